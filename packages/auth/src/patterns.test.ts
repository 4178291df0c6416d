import { findToken, isTrustedOrigin, readCookie } from './auth-request';
import { allowedBy, matchesPattern, patternProblem } from './patterns';

describe('topic patterns', () => {
  it.each([
    ['news', 'news', undefined, true],
    ['news', 'news/x', undefined, false],
    ['stocks/*', 'stocks/AAPL', undefined, true],
    ['stocks/*', 'stocks/', undefined, true],
    ['stocks/*', 'stocks', undefined, false],
    ['stocks/*', 'stocksX/AAPL', undefined, false],
    ['*', 'anything/at/all', undefined, true],
    ['user/{sub}/*', 'user/alice/inbox', 'alice', true],
    ['user/{sub}/*', 'user/bob/inbox', 'alice', false],
    ['user/{sub}/*', 'user/alice/inbox', undefined, false],
    ['user/{sub}/*', 'user/alice/inbox', 'alice/../bob', false],
    ['user/{sub}/*', 'user/a/b/x', 'a/b', false],
    ['user/{sub}/*', 'user/*/x', '*', false],
    ['a*b', 'a*b', undefined, true],
    ['a*b', 'axb', undefined, false],
  ])('%s matches %s for sub %s: %s', (pattern, topic, sub, expected) => {
    expect(matchesPattern(pattern, topic, sub)).toBe(expected);
  });

  it('allows a topic when any pattern does', () => {
    expect(allowedBy(['a', 'b/*'], 'b/c', undefined)).toBe(true);
    expect(allowedBy([], 'a', undefined)).toBe(false);
  });

  it('says what is wrong with a pattern', () => {
    expect(patternProblem('stocks/*')).toBeUndefined();
    expect(patternProblem('user/{sub}/*')).toBeUndefined();
    expect(patternProblem('user/{sub}/*', false)).toMatch(/\{sub\}/);
    expect(patternProblem('a*b')).toMatch(/\*/);
    expect(patternProblem('')).toBeDefined();
    expect(patternProblem('a b')).toBeDefined();
  });
});

describe('token sources and origins', () => {
  const req = (headers: Record<string, string>, queryToken?: unknown) => ({
    headers,
    queryToken,
    ip: '127.0.0.1',
  });

  it('reads the header first, then the cookie, then the query (when allowed)', () => {
    expect(findToken(req({ authorization: 'Bearer h', cookie: 'sse_token=c' }, 'q'), true)).toEqual(
      { token: 'h', source: 'header' },
    );
    expect(findToken(req({ cookie: 'a=1; sse_token=c' }, 'q'), true)).toEqual({
      token: 'c',
      source: 'cookie',
    });
    expect(findToken(req({}, 'q'), true)).toEqual({ token: 'q', source: 'query' });
    expect(findToken(req({}, 'q'), false)).toBeUndefined();
    expect(() => findToken(req({}, ['a', 'b']), true)).toThrow(/more than once/);
    expect(() => findToken(req({ authorization: 'Basic x' }), true)).toThrow(/Bearer/);
  });

  it('parses cookies leniently and never throws', () => {
    expect(readCookie('sse_token="abc"', 'sse_token')).toBe('abc');
    expect(readCookie('sse_token=%', 'sse_token')).toBe('%');
    expect(readCookie('x_sse_token=1; sse_token=2', 'sse_token')).toBe('2');
    expect(readCookie('sse_token=', 'sse_token')).toBeUndefined();
    expect(readCookie(';;=;', 'sse_token')).toBeUndefined();
  });

  it('trusts listed origins and this host only', () => {
    const allowed = new Set(['https://app.example']);
    expect(isTrustedOrigin(req({ origin: 'https://app.example' }), allowed)).toBe(true);
    expect(isTrustedOrigin(req({ origin: 'https://app.example.evil' }), allowed)).toBe(false);
    expect(isTrustedOrigin(req({ origin: 'http://gw:3000', host: 'gw:3000' }), allowed)).toBe(true);
    expect(isTrustedOrigin(req({ origin: 'null', host: 'null' }), allowed)).toBe(false);
    expect(isTrustedOrigin(req({ referer: 'https://app.example/page?x=1' }), allowed)).toBe(true);
    expect(isTrustedOrigin(req({ referer: '://' }), allowed)).toBe(false);
    expect(isTrustedOrigin(req({}), allowed)).toBe(false);
  });
});
