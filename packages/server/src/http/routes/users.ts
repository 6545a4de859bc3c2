import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Runtime } from '../../runtime.ts';
import { ANSWER_AT_COMMIT, scopeOf } from '../context.ts';
import { listObject } from '../../store/paging.ts';
import { ListQuery, Metadata, ShortText, UserId, UserIdPattern } from '../schemas.ts';
import { createUser, listUsers, retrieveUser, updateUser } from '../../services/users.ts';

/** /v1/apps/:app/users — 用户 (§8). */

const Profile = {
  address: Type.Optional(ShortText(255)),
  avatar: Type.Optional(ShortText(1024)),
  email: Type.Optional(ShortText(255)),
  gender: Type.Optional(Type.Union([Type.Literal('MALE'), Type.Literal('FEMALE'), Type.Literal(''), Type.Null()])),
  mobile: Type.Optional(ShortText(32)),
  name: Type.Optional(ShortText(128)),
  metadata: Type.Optional(Metadata),
  parent_user_id: Type.Optional(Type.Union([Type.String({ maxLength: 64, pattern: UserIdPattern }), Type.Null()])),
};
const UserCreate = Type.Object({ id: UserId, ...Profile }, { additionalProperties: false, examples: [{ id: 'user_001', name: '张三', email: 'user@example.com', metadata: { level: 'gold' } }] });
const UserUpdate = Type.Object({ ...Profile, disabled: Type.Optional(Type.Boolean()) }, { additionalProperties: false, examples: [{ mobile: '13800000000' }, { disabled: true }] });
const Params = Type.Object({ app: Type.String({ maxLength: 64 }) });
const IdParams = Type.Object({ app: Type.String({ maxLength: 64 }), id: Type.String({ maxLength: 64 }) });
const UsersQuery = Type.Object({ ...ListQuery, type: Type.Optional(Type.Union([Type.Literal('customer'), Type.Literal('business')])) });

export async function usersRoutes(app: FastifyInstance, rt: Runtime): Promise<void> {
  app.post<{ Body: Static<typeof UserCreate> }>('/apps/:app/users', { schema: { params: Params, body: UserCreate } }, (req) =>
    createUser(rt, scopeOf(req), req.body, ANSWER_AT_COMMIT),
  );

  app.get<{ Params: Static<typeof IdParams> }>('/apps/:app/users/:id', { schema: { params: IdParams } }, (req) =>
    retrieveUser(rt, scopeOf(req), req.params.id),
  );

  app.get<{ Params: Static<typeof Params>; Querystring: Static<typeof UsersQuery> }>(
    '/apps/:app/users',
    { schema: { params: Params, querystring: UsersQuery } },
    async (req) => {
      const { data, hasMore } = await listUsers(rt, scopeOf(req), req.query);
      return listObject(`/v1/apps/${req.params.app}/users`, data, hasMore);
    },
  );

  app.put<{ Params: Static<typeof IdParams>; Body: Static<typeof UserUpdate> }>(
    '/apps/:app/users/:id',
    { schema: { params: IdParams, body: UserUpdate } },
    (req) => updateUser(rt, scopeOf(req), req.params.id, req.body),
  );
}
