/** `Text/Plain; charset=utf-8` → `text/plain`. */
export function normalizeMediaType(value: string | undefined): string {
  return (value ?? '').split(';')[0]?.trim().toLowerCase() || 'application/octet-stream';
}

/**
 * A test for media types against a list of `type/subtype`, `type/*` and `*\/*` (UPLOAD_TYPES).
 */
export function mediaTypeMatcher(types: readonly string[]): (mime: string) => boolean {
  const exact = new Set<string>();
  const families = new Set<string>();
  let any = false;
  for (const raw of types) {
    const type = raw.trim().toLowerCase();
    if (type === '*/*') any = true;
    else if (type.endsWith('/*')) families.add(type.slice(0, -1));
    else exact.add(type);
  }
  return (mime) => {
    const type = normalizeMediaType(mime);
    return any || exact.has(type) || families.has(type.slice(0, type.indexOf('/') + 1));
  };
}
