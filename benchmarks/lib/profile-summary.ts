/**
 * Prints where a .cpuprofile spent its time: self time by function, and total (inclusive) time
 * by source file.
 *
 *   node -r ts-node/register/transpile-only benchmarks/lib/profile-summary.ts <file> [top] [from-s to-s]
 *
 * With `from-s to-s`, only the samples between those seconds from the profile's start count (a
 * storm, one round of the resume benchmark); without, it also prints a timeline of the busy
 * (not idle) milliseconds of each half second, to find such windows.
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

const [file, topArg, fromArg, toArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: profile-summary.ts <file.cpuprofile> [top] [from-s to-s]\n');
  process.exit(1);
}
const top = Number(topArg ?? 25);
const windowed = fromArg !== undefined && toArg !== undefined;
const from = Number(fromArg) * 1e6;
const to = Number(toArg) * 1e6;
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const self = new Map<number, number>();
/** Busy (not idle) microseconds per half second from the start. */
const busy: number[] = [];
let at = 0;
profile.samples.forEach((id, i) => {
  const delta = profile.timeDeltas[i] ?? 0;
  at += delta;
  if (windowed && (at < from || at >= to)) return;
  self.set(id, (self.get(id) ?? 0) + delta);
  if (byId.get(id)?.callFrame.functionName !== '(idle)') {
    const bucket = Math.floor(at / 5e5);
    busy[bucket] = (busy[bucket] ?? 0) + delta;
  }
});
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
process.stdout.write(
  `${file}: ${(total / 1e6).toFixed(2)} s sampled, ` +
    `${(busy.reduce((a, b) => a + b, 0) / 1e6).toFixed(2)} s of it busy` +
    (windowed ? `, from ${fromArg} s to ${toArg} s` : '') +
    '\n',
);
if (!windowed) {
  process.stdout.write('\nbusy ms per half second from the start (empty: idle):\n');
  const line: string[] = [];
  busy.forEach((us, i) => {
    if (us >= 5000) line.push(`${(i / 2).toFixed(1)}s:${Math.round(us / 1000)}`);
  });
  process.stdout.write(`${line.join(' ')}\n`);
}
process.stdout.write(`\nself time, top ${top}:\n`);
for (const [n, t] of [...selfByName].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  process.stdout.write(`${pct(t)}  ${n}\n`);
}
process.stdout.write(`\ninclusive time by file, top ${top}:\n`);
for (const [f, t] of [...fileTotal].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  process.stdout.write(`${pct(t)}  ${f}\n`);
}
