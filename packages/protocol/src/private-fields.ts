import { BodyInvalid } from './errors';
import { describe } from './names';

/**
 * Private fields: a publisher marks top-level fields of an event's data as visible only to
 * subscribers whose token carries a claim. Gateways strip them for everyone else, one encoding
 * per variant of the event (see the hub's dispatch).
 *
 * On the wire (`POST /publish`): `"private": {"fields": ["email"], "claim": "staff"}`, or a list
 * of such groups. A claim is `name` (the token's claim `name` is `true`) or `name=value` (the
 * claim equals `value`, or is a list holding it). `name` is a top-level claim, else a dotted path
 * into nested claims (`realm_access.roles=admin`).
 */
export interface PrivateGroup {
  fields: string[];
  claim: string;
}

/** The claims of a subscriber's token; undefined for a subscriber without one. */
export type Viewer = Readonly<Record<string, unknown>> | undefined;

const MAX_GROUPS = 8;
const MAX_FIELDS = 64;
// eslint-disable-next-line no-control-regex -- control characters are what a claim value must not hold
const CLAIM_RE = /^[A-Za-z0-9_:./-]{1,128}(=[^\u0000-\u001f\u007f]{1,256})?$/;

/**
 * Validates a publish's `private` against its `data` and returns it as stored (compact JSON
 * text of the groups), or undefined when absent. Throws BODY_INVALID.
 */
export function normalizePrivate(value: unknown, data: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  const groups = Array.isArray(value) ? value : [value];
  if (groups.length === 0 || groups.length > MAX_GROUPS) {
    throw new BodyInvalid(`"private" takes 1 to ${MAX_GROUPS} groups`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new BodyInvalid('"private" needs "data" to be a JSON object');
  }
  const normalized = groups.map((group: unknown): PrivateGroup => {
    if (typeof group !== 'object' || group === null || Array.isArray(group)) {
      throw new BodyInvalid(
        '"private" must be {"fields": [...], "claim": "..."} or a list of them',
      );
    }
    const { fields, claim, ...rest } = group as Record<string, unknown>;
    const extra = Object.keys(rest)[0];
    if (extra !== undefined) throw new BodyInvalid(`unknown field "private".${describe(extra)}`);
    if (
      !Array.isArray(fields) ||
      fields.length === 0 ||
      fields.length > MAX_FIELDS ||
      !fields.every((f) => typeof f === 'string' && f.length > 0 && f.length <= 256)
    ) {
      throw new BodyInvalid(`"private".fields must list 1 to ${MAX_FIELDS} field names`);
    }
    if (typeof claim !== 'string' || !CLAIM_RE.test(claim)) {
      throw new BodyInvalid(`"private".claim ${describe(claim)} must be "name" or "name=value"`);
    }
    return { fields: [...new Set(fields as string[])], claim };
  });
  return JSON.stringify(normalized);
}

const parsed = new Map<string, PrivateGroup[] | null>();

/**
 * The groups of a stored `private` text, cached (events of one kind share it); null when it
 * cannot be read, which callers treat as "everything private".
 */
export function parsePrivate(text: string): PrivateGroup[] | null {
  let groups = parsed.get(text);
  if (groups !== undefined) return groups;
  try {
    const value = JSON.parse(text) as PrivateGroup[];
    const ok =
      Array.isArray(value) &&
      value.every(
        (g) =>
          Array.isArray(g?.fields) &&
          g.fields.every((f) => typeof f === 'string') &&
          typeof g.claim === 'string',
      );
    groups = ok ? value : null;
  } catch {
    groups = null;
  }
  if (parsed.size >= 1024) parsed.clear();
  parsed.set(text, groups);
  return groups;
}

/** True when the token's claims satisfy `claim` (see PrivateGroup). */
export function claimHolds(viewer: Viewer, claim: string): boolean {
  if (!viewer) return false;
  const eq = claim.indexOf('=');
  const name = eq === -1 ? claim : claim.slice(0, eq);
  const found = lookup(viewer, name);
  if (eq === -1) return found === true;
  const expected = claim.slice(eq + 1);
  if (Array.isArray(found)) return found.some((v) => String(v) === expected);
  return (
    found !== undefined && found !== null && typeof found !== 'object' && String(found) === expected
  );
}

function hasOwn(object: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key);
}

/** A top-level claim by its whole name (`https://example.com/roles`), else a dotted path. */
function lookup(viewer: Readonly<Record<string, unknown>>, name: string): unknown {
  if (hasOwn(viewer, name)) return viewer[name];
  let node: unknown = viewer;
  for (const part of name.split('.')) {
    if (typeof node !== 'object' || node === null || !hasOwn(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/**
 * Which groups the viewer may see, as a bit mask (bit i: group i); all bits set means the whole
 * data. `groups` null (unreadable) gives 0.
 */
export function visibleMask(
  groups: PrivateGroup[] | null,
  holds: (claim: string) => boolean,
): number {
  if (!groups) return 0;
  let mask = 0;
  for (let i = 0; i < groups.length; i++) {
    if (holds((groups[i] as PrivateGroup).claim)) mask |= 1 << i;
  }
  return mask;
}

/**
 * The data text with the fields of the groups not in `mask` removed. Unreadable groups (null)
 * or data that is not a JSON object yield `null`: nothing private may leak through a record
 * we cannot read.
 */
export function stripFields(data: string, groups: PrivateGroup[] | null, mask: number): string {
  if (!groups) return 'null';
  if (mask === (1 << groups.length) - 1) return data;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return 'null';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'null';
  const record = value as Record<string, unknown>;
  // A field listed by several groups is visible to the holders of any of them.
  const shown = new Set<string>();
  groups.forEach((group, i) => {
    if (mask & (1 << i)) for (const field of group.fields) shown.add(field);
  });
  groups.forEach((group, i) => {
    if (mask & (1 << i)) return;
    for (const field of group.fields) if (!shown.has(field)) delete record[field];
  });
  return JSON.stringify(record);
}
