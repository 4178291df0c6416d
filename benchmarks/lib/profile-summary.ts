/**
 * Prints where a .cpuprofile spent its time: self time by function, and total (inclusive) time
 * by source file.
 *
 *   node -r ts-node/register/transpile-only benchmarks/lib/profile-summary.ts <file> [top]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: profile-summary.ts <file.cpuprofile> [top]\n');
  process.exit(1);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const self = new Map<number, number>();
profile.samples.forEach((id, i) =>
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)),
);
const total = [...self.values()].reduce((a, b) => a + b, 0);

const short = (url: string) =>
  url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules|packages|apps)\//, '$1/');
const name = (n: ProfileNode) =>
  `${n.callFrame.functionName || '(anonymous)'} ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;

const selfByName = new Map<string, number>();
for (const [id, t] of self) {
  const n = byId.get(id);
  if (n) selfByName.set(name(n), (selfByName.get(name(n)) ?? 0) + t);
}

// Inclusive time per file: each sample counts once for every distinct file on its stack.
const fileTotal = new Map<string, number>();
for (const [id, t] of self) {
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const url = short(byId.get(cur)?.callFrame.url ?? '') || '(native)';
    if (!seen.has(url)) {
      seen.add(url);
      fileTotal.set(url, (fileTotal.get(url) ?? 0) + t);
    }
  }
}

const pct = (t: number) => `${((t / total) * 100).toFixed(1).padStart(5)}%`;
process.stdout.write(`${file}: ${(total / 1e6).toFixed(2)} s sampled\n\nself time, top ${top}:\n`);
for (const [n, t] of [...selfByName].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  process.stdout.write(`${pct(t)}  ${n}\n`);
}
process.stdout.write(`\ninclusive time by file, top ${top}:\n`);
for (const [f, t] of [...fileTotal].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  process.stdout.write(`${pct(t)}  ${f}\n`);
}
