import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { gatewayEnv } from '@streamcast/config';

const ROOT = join(__dirname, '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const readme = read('README.md');

/** Every Markdown file in the repository (tracked or new, not ignored). */
function markdownFiles(): string[] {
  const out = execFileSync(
    'git',
    ['ls-files', '--cached', '--others', '--exclude-standard', '*.md'],
    {
      cwd: ROOT,
      encoding: 'utf8',
    },
  );
  return out
    .split('\n')
    .filter((f) => f !== '' && existsSync(join(ROOT, f)))
    .sort();
}

/** Text outside fenced code blocks (links and headings inside them are examples). */
function prose(text: string): string {
  return text.replace(/^```[\s\S]*?^```/gm, '');
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}_\- ]/gu, '')
    .replace(/ /g, '-');
}

function anchorsOf(file: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const m of prose(read(file)).matchAll(/^#{1,6} (.+)$/gm)) {
    const base = slug(m[1] as string);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

describe('README and docs/', () => {
  it('open with the two commands: run and test', () => {
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    expect(firstBlock).toContain('npm ci && npm start');
    expect(firstBlock).toContain('npm run test:all');
    const ci = read('.ci/run');
    expect(ci).toContain('npm run test:all');
  });

  it('keep the README short, with every docs/ page linked from it', () => {
    expect(readme.split('\n').length).toBeLessThanOrEqual(300);
    const pages = markdownFiles().filter((f) => f.startsWith('docs/') && f !== 'docs/README.md');
    expect(pages.length).toBeGreaterThanOrEqual(10);
    for (const page of pages) expect(readme).toContain(`](${page})`);
    const index = read('docs/README.md');
    for (const page of pages) expect(index).toContain(`](${relative('docs', page)})`);
  });

  it('list every error code with its status (docs/api.md)', () => {
    const api = read('docs/api.md');
    const source = read('packages/protocol/src/errors.ts');
    const codes = [...source.matchAll(/createError\(\s*'([A-Z_]+)',[\s\S]*?(\d{3}),?\s*\);/g)];
    expect(codes.length).toBeGreaterThan(10);
    for (const [, code, status] of codes) {
      expect(api).toMatch(new RegExp(`\\| ${status} \\| \`${code}\` \\|`));
    }
  });

  it('document every environment variable in the configuration table (docs/configuration.md)', () => {
    const configuration = read('docs/configuration.md');
    for (const name of Object.keys(gatewayEnv)) {
      expect(configuration).toMatch(new RegExp(`^\\| \`${name}\` \\|`, 'm'));
    }
  });

  it('have no broken relative link or anchor in any Markdown file', () => {
    const files = markdownFiles();
    expect(files).toContain('README.md');
    const broken: string[] = [];
    let checked = 0;
    for (const file of files) {
      for (const m of prose(read(file)).matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = m[1] as string;
        if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // https:, mailto:
        const [path = '', anchor] = link.split('#', 2);
        const target =
          path === '' ? join(ROOT, file) : resolve(ROOT, dirname(file), decodeURI(path));
        // Links out of the repository (../shared/API.md, the contract beside it) are not ours.
        if (relative(ROOT, target).startsWith('..')) continue;
        checked++;
        if (!existsSync(target)) {
          broken.push(`${file}: ${link} (no such file)`);
          continue;
        }
        if (anchor !== undefined && target.endsWith('.md') && statSync(target).isFile()) {
          if (!anchorsOf(relative(ROOT, target)).has(anchor))
            broken.push(`${file}: ${link} (no such heading)`);
        }
      }
    }
    expect(broken).toEqual([]);
    expect(checked).toBeGreaterThan(50);
  });
});
