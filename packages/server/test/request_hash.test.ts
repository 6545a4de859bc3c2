import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { requestHash } from '../src/services/common.ts';

/**
 * The fingerprint of a create's parameters is stored with the object (request_hash), and a retry
 * with the same order_no is compared against it: the text it hashes must never change, or a retry
 * after an upgrade would be refused as a different request.
 */
describe('requestHash', () => {
  const sha = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

  it('hashes JSON with sorted keys, null and undefined members left out, nulls kept in arrays', () => {
    const params = { user: 'u1', amount: 1000, extra: { name: '张三', account: 'a@b.cn', bank: null }, metadata: undefined, list: [2, null, { b: 1, a: 'x' }], user_fee: 0 };
    expect(requestHash(params)).toBe(sha('{"amount":1000,"extra":{"account":"a@b.cn","name":"张三"},"list":[2,null,{"a":"x","b":1}],"user":"u1","user_fee":0}'));
  });

  it('is the same whatever the key order, and differs with any value', () => {
    expect(requestHash({ a: 1, b: { d: [1, 2], c: 'x' } })).toBe(requestHash({ b: { c: 'x', d: [1, 2] }, a: 1 }));
    expect(requestHash({ a: 1, b: 2 })).not.toBe(requestHash({ a: 1, b: 3 }));
    expect(requestHash({ a: [1, 2] })).not.toBe(requestHash({ a: [2, 1] }));
    expect(requestHash({})).toBe(sha('{}'));
    expect(requestHash({ a: {} })).toBe(sha('{"a":{}}'));
  });
});
