import { MAX_DATA_DEPTH, dataJson } from './data';

const nested = (depth: number) => JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`) as unknown;

describe('dataJson', () => {
  it('returns the JSON text of any JSON value', () => {
    expect(dataJson(null)).toBe('null');
    expect(dataJson({ a: [1, 'x', { b: true }] })).toBe('{"a":[1,"x",{"b":true}]}');
  });

  it(`takes data nested exactly ${MAX_DATA_DEPTH} deep and refuses one level more`, () => {
    expect(dataJson(nested(MAX_DATA_DEPTH))).toHaveLength(2 * MAX_DATA_DEPTH);
    expect(() => dataJson(nested(MAX_DATA_DEPTH + 1))).toThrow(
      expect.objectContaining({ code: 'BODY_INVALID', statusCode: 400 }),
    );
    let objects: unknown = 1;
    for (let i = 0; i < MAX_DATA_DEPTH + 1; i++) objects = { k: objects };
    expect(() => dataJson(objects)).toThrow(expect.objectContaining({ code: 'BODY_INVALID' }));
  });

  it('refuses nesting too deep for JSON.stringify the same way on every Node version', () => {
    for (const depth of [20_000, 200_000]) {
      let deep: unknown = [];
      for (let i = 0; i < depth; i++) deep = [deep];
      expect(() => dataJson(deep)).toThrow(expect.objectContaining({ code: 'BODY_INVALID' }));
    }
  });

  it('refuses what is not a JSON value, and leaves cycles to throw as the bug they are', () => {
    expect(() => dataJson(undefined)).toThrow(expect.objectContaining({ code: 'BODY_INVALID' }));
    expect(() => dataJson(() => 1)).toThrow(expect.objectContaining({ code: 'BODY_INVALID' }));
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => dataJson(cycle)).toThrow(TypeError);
  });
});
