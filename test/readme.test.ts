import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gatewayEnv } from '@streamcast/config';

const ROOT = join(__dirname, '..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

describe('README', () => {
  it('opens with the two commands: run and test', () => {
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    expect(firstBlock).toContain('npm ci && npm start');
    expect(firstBlock).toContain('npm run test:all');
    const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8');
    expect(ci).toContain('npm run test:all');
  });

  it('lists every error code with its status', () => {
    const source = readFileSync(join(ROOT, 'packages/protocol/src/errors.ts'), 'utf8');
    const codes = [...source.matchAll(/createError\(\s*'([A-Z_]+)',[\s\S]*?(\d{3}),?\s*\);/g)];
    expect(codes.length).toBeGreaterThan(10);
    for (const [, code, status] of codes) {
      expect(readme).toMatch(new RegExp(`\\| ${status} \\| \`${code}\` \\|`));
    }
  });

  it('documents every environment variable in the configuration table', () => {
    for (const name of Object.keys(gatewayEnv)) {
      expect(readme).toMatch(new RegExp(`^\\| \`${name}\` \\|`, 'm'));
    }
  });
});
