import { Type, type TSchema } from '@sinclair/typebox';
import { MAX_AMOUNT } from '../domain/money.ts';

/** Shared pieces of request schemas. Every string and collection has a bound (TIGER_STYLE). */

/** C# reads `created` as a 32-bit int (§5.5); larger filters would also overflow PostgreSQL's bigint. */
export const MAX_TIMESTAMP = 2_147_483_647;

export const Amount = Type.Integer({ minimum: 1, maximum: MAX_AMOUNT });
export const Fee = Type.Integer({ minimum: 0, maximum: MAX_AMOUNT });

/** order_no for balance resources: Ping++ documents 1–64 alphanumerics plus `-` and `_`. */
export const OrderNo = Type.String({ minLength: 1, maxLength: 64, pattern: '^[0-9A-Za-z_-]+$' });

/** User ids: ≤ 64 chars, first a letter/digit/underscore; then also `-`, `@`, `.` (Java test comment). */
export const UserIdPattern = '^[0-9A-Za-z_][0-9A-Za-z_@.-]{0,63}$';
export const UserId = Type.String({ minLength: 1, maxLength: 64, pattern: UserIdPattern });

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const Description = Nullable(Type.String({ maxLength: 255 }));
export const ShortText = (max: number) => Nullable(Type.String({ maxLength: max }));

/**
 * Metadata (limits undocumented by Ping++; ours follow Stripe's): ≤ 50 keys, key ≤ 40 chars,
 * values string/number/boolean with strings ≤ 500 chars. `null` clears (Node's setMetadata sends it).
 */
export const Metadata = Nullable(
  Type.Object(
    {},
    {
      additionalProperties: Type.Union([Type.String({ maxLength: 500 }), Type.Number(), Type.Boolean()]),
      maxProperties: 50,
      propertyNames: { minLength: 1, maxLength: 40 },
    },
  ),
);

/** Query-string schemas are coerced from text; page/per_page and limit/cursors per §5.2. */
export const ListQuery = {
  page: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000 })),
  per_page: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  starting_after: Type.Optional(Type.String({ maxLength: 64 })),
  ending_before: Type.Optional(Type.String({ maxLength: 64 })),
  'created[gt]': Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TIMESTAMP })),
  'created[gte]': Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TIMESTAMP })),
  'created[lt]': Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TIMESTAMP })),
  'created[lte]': Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TIMESTAMP })),
  created: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TIMESTAMP })),
};
