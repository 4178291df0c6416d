/**
 * Topic patterns of tokens' claims and of PUBLIC_TOPICS: a topic name, or one ending in `*`
 * (any remainder, the empty one included), where `{sub}` stands for the token's `sub`.
 */

/** A `sub` that may stand in a topic: the topic alphabet without `/` and `*`, so that
 * `user/{sub}/*` can never reach into another user's topics (`sub` = `alice/x`). */
const SUB_RE = /^[A-Za-z0-9_\-.:]{1,128}$/;
const PATTERN_RE = /^(?:[A-Za-z0-9_\-.:/]|\{sub\})+\*?$|^\*$/;
const SUB_TOKEN = '{sub}';

/** Why `pattern` is not a pattern, or undefined when it is one. */
export function patternProblem(pattern: string, allowSub = true): string | undefined {
  if (pattern.length === 0 || pattern.length > 256) return 'must be 1-256 characters';
  if (!PATTERN_RE.test(pattern)) {
    return 'must be topic characters (A-Z a-z 0-9 _ - . : /), {sub}, and at most one * at the end';
  }
  if (!allowSub && pattern.includes(SUB_TOKEN)) return 'cannot use {sub} (there is no token)';
  return undefined;
}

/** True when `topic` matches `pattern` for a token whose subject is `sub`. */
export function matchesPattern(pattern: string, topic: string, sub: string | undefined): boolean {
  let text = pattern;
  if (text.includes(SUB_TOKEN)) {
    // No usable subject: patterns about "the token's own topics" match nothing.
    if (sub === undefined || !SUB_RE.test(sub)) return false;
    text = text.split(SUB_TOKEN).join(sub);
  }
  if (text.endsWith('*')) return topic.startsWith(text.slice(0, -1));
  return topic === text;
}

/** True when any of `patterns` allows `topic`. */
export function allowedBy(
  patterns: readonly string[],
  topic: string,
  sub: string | undefined,
): boolean {
  for (const pattern of patterns) {
    if (matchesPattern(pattern, topic, sub)) return true;
  }
  return false;
}
