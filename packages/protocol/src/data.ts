import { BodyInvalid } from './errors';

/**
 * How deep an event's `data` may nest (arrays and objects). A fixed, documented limit, so a
 * publish means the same on every Node version: V8's JSON.stringify overflows its stack
 * somewhere past 10,000 levels on Node 20 but not on Node 24, and a browser's JSON.parse has
 * limits of its own.
 */
export const MAX_DATA_DEPTH = 1000;

/**
 * The JSON text of an event's `data`, or BODY_INVALID: nested deeper than MAX_DATA_DEPTH, or
 * not a JSON value at all (`undefined`, a function). Cycles and BigInt still throw as they are:
 * a bug of the calling code, not of its input.
 */
export function dataJson(data: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(data) as string | undefined;
  } catch (err) {
    if (err instanceof RangeError) throw new BodyInvalid('"data" is nested too deeply');
    throw err;
  }
  if (json === undefined) throw new BodyInvalid('"data" is not a JSON value');
  // Each level costs at least two characters, so a short text cannot be too deep: the
  // walk below runs only for large events.
  if (json.length > 2 * MAX_DATA_DEPTH && depthExceeds(data, MAX_DATA_DEPTH)) {
    throw new BodyInvalid(`"data" nests deeper than ${MAX_DATA_DEPTH} levels`);
  }
  return json;
}

/** Whether `value` nests deeper than `max`; iterative, so no depth can overflow it. */
function depthExceeds(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth + 1 > max) return true;
    const children = Array.isArray(node) ? node : Object.values(node);
    for (const child of children) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}
