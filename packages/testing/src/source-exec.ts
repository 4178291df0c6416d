/**
 * Node options that run an app's TypeScript source, as the tests do: ts-node transpiles, and the
 * `streamcast-source` export condition makes every `@streamcast/*` import resolve to the
 * package's src/index.ts instead of its dist/ build, so a test never runs stale compiled code.
 * (`npm start`, `npm run gateway` and the image run the compiled dist/; see docs/development.md, "Build".)
 */
export const SOURCE_EXEC_ARGV: readonly string[] = [
  '--conditions=streamcast-source',
  '-r',
  'ts-node/register/transpile-only',
];
