import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort, redisServerPath, sleep, which } from '@streamcast/local';
import { launchChromium, startGatewayProcess, type GatewayProcess } from '@streamcast/testing';

/**
 * `npm run dashboard:snapshot`: a picture of the Grafana dashboard
 * (infra/grafana/dashboards/streamcast.json) with live data, without Grafana (which is neither
 * in Debian nor on npm). Two compiled gateways on a redis-server, a real Prometheus (Debian's
 * package) scraping both every second, the load tester subscribing and publishing through them,
 * and Redis killed and restarted empty halfway, so the loss-prevention panels have something to
 * show. Then every panel's queries run over the window in that Prometheus (query_range), and
 * the panels are drawn where the dashboard's grid puts them, in Grafana's dark style: stat
 * panels as their last value, time series as lines. Chromium saves the page as a PNG
 * (default docs/images/dashboard.png; SNAPSHOT_OUT), which the README shows.
 *
 * The figures are real; the drawing is this file's, not Grafana's.
 */

const ROOT = join(__dirname, '..');
const DASHBOARD = join(ROOT, 'infra', 'grafana', 'dashboards', 'streamcast.json');

export interface Panel {
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Array<{ expr: string; legendFormat?: string }>;
  fieldConfig?: {
    defaults?: {
      unit?: string;
      min?: number;
      max?: number;
      custom?: { stacking?: { mode?: string } };
      mappings?: Array<{ options: Record<string, { text: string; color: string }> }>;
    };
  };
}

/** One series of a panel over the window: its legend and [unix seconds, value] points. */
export interface Series {
  legend: string;
  points: Array<[number, number]>;
}

/** What Grafana puts in place of its variables (every gateway; a scrape every second). */
export function asPrometheusQuery(expr: string, rangeS: number): string {
  return expr
    .replaceAll('$__rate_interval', '10s')
    .replaceAll('$__range', `${rangeS}s`)
    .replaceAll('$instance', '.*');
}

/** A legend format (`queued {{instance}}`) filled in with a series' labels. */
export function legendOf(format: string | undefined, labels: Record<string, string>): string {
  if (!format) return Object.values(labels).join(' ') || 'value';
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_m, name: string) => labels[name] ?? '');
}

/** Runs every query of every panel over [start, end] in Prometheus; by panel title. */
export async function queryPanels(
  promUrl: string,
  panels: readonly Panel[],
  start: number,
  end: number,
  stepS = 2,
): Promise<Map<string, Series[]>> {
  const out = new Map<string, Series[]>();
  for (const panel of panels) {
    const series: Series[] = [];
    for (const target of panel.targets ?? []) {
      const query = asPrometheusQuery(target.expr, Math.round(end - start));
      const url =
        `${promUrl}/api/v1/query_range?query=${encodeURIComponent(query)}` +
        `&start=${start}&end=${end}&step=${stepS}`;
      const res = await fetch(url);
      const body = (await res.json()) as {
        status: string;
        error?: string;
        data?: {
          result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }>;
        };
      };
      if (body.status !== 'success') throw new Error(`${panel.title}: ${query}: ${body.error}`);
      for (const r of body.data?.result ?? []) {
        series.push({
          legend: legendOf(target.legendFormat, r.metric),
          points: r.values
            .map(([t, v]): [number, number] => [t, Number(v)])
            .filter(([, v]) => Number.isFinite(v)),
        });
      }
    }
    out.set(panel.title, series);
  }
  return out;
}

/** A value in the panel's unit, as Grafana would print it. */
export function formatValue(value: number, unit: string | undefined): string {
  const round = (v: number) =>
    Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
  switch (unit) {
    case 's':
      if (value === 0) return '0 s';
      if (value < 1e-3) return `${round(value * 1e6)} µs`;
      if (value < 1) return `${round(value * 1e3)} ms`;
      return `${round(value)} s`;
    case 'bytes': {
      const units = ['B', 'KiB', 'MiB', 'GiB'];
      let v = value;
      let i = 0;
      while (Math.abs(v) >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
      }
      return `${round(v)} ${units[i]}`;
    }
    case 'percentunit':
      return `${round(value * 100)}%`;
    case 'ops':
      return `${value >= 1000 ? `${round(value / 1000)}k` : round(value)} ops/s`;
    default:
      return value >= 1000
        ? `${round(value / 1000)}k`
        : Number.isInteger(value)
          ? String(value)
          : round(value);
  }
}

const COLORS = [
  '#73bf69',
  '#f2cc0c',
  '#8ab8ff',
  '#ff780a',
  '#f2495c',
  '#5794f2',
  '#b877d9',
  '#fade2a',
];

const escapeHtml = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** A time series panel's chart: one line per series, the value axis from 0 (or the panel's min). */
function chart(
  panel: Panel,
  unstacked: Series[],
  start: number,
  end: number,
  w: number,
  h: number,
): string {
  const unit = panel.fieldConfig?.defaults?.unit;
  const stacked = panel.fieldConfig?.defaults?.custom?.stacking?.mode === 'normal';
  const series = stacked ? stack(unstacked) : unstacked;
  const values = series.flatMap((s) => s.points.map(([, v]) => v));
  const min = panel.fieldConfig?.defaults?.min ?? Math.min(0, ...values);
  let max = panel.fieldConfig?.defaults?.max ?? Math.max(...values, min);
  if (max <= min) max = min + 1;
  const left = 70;
  const bottom = 18;
  const x = (t: number) => left + ((t - start) / (end - start)) * (w - left - 8);
  const y = (v: number) => 6 + (1 - (v - min) / (max - min)) * (h - bottom - 6);
  const grid = [0, 0.5, 1]
    .map((f) => {
      const v = min + f * (max - min);
      return (
        `<line x1="${left}" x2="${w - 8}" y1="${y(v)}" y2="${y(v)}" stroke="#2c3235"/>` +
        `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${escapeHtml(formatValue(v, unit))}</text>`
      );
    })
    .join('');
  const ticks = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => {
      const t = start + f * (end - start);
      const label = new Date(t * 1000).toISOString().slice(11, 19);
      return `<text x="${x(t)}" y="${h - 4}" text-anchor="middle">${label}</text>`;
    })
    .join('');
  const lines = series
    .map((s, i) => {
      if (s.points.length === 0) return '';
      const d = s.points
        .map(([t, v], j) => `${j === 0 ? 'M' : 'L'}${x(t).toFixed(1)},${y(v).toFixed(1)}`)
        .join('');
      const color = COLORS[i % COLORS.length];
      return `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"/>`;
    })
    .join('');
  return `<svg width="${w}" height="${h}">${grid}${ticks}${lines}</svg>`;
}

/** Series stacked as Grafana's `stacking: normal` draws them: each on top of those before. */
function stack(series: Series[]): Series[] {
  const below = new Map<number, number>();
  return series.map((s) => ({
    legend: s.legend,
    points: s.points.map(([t, v]): [number, number] => {
      const top = (below.get(t) ?? 0) + v;
      below.set(t, top);
      return [t, top];
    }),
  }));
}

/** The page: every panel where the dashboard's 24-column grid puts it. */
export function renderDashboard(
  title: string,
  panels: readonly Panel[],
  data: Map<string, Series[]>,
  start: number,
  end: number,
  note: string,
): string {
  const colW = 60;
  const rowH = 34;
  const body = panels
    .map((panel) => {
      const { x, y, w, h } = panel.gridPos;
      const box = `left:${x * colW}px;top:${y * rowH}px;width:${w * colW - 8}px;height:${h * rowH - 8}px`;
      if (panel.type === 'row') {
        return `<div class="row" style="${box}">${escapeHtml(panel.title)}</div>`;
      }
      const series = data.get(panel.title) ?? [];
      const defaults = panel.fieldConfig?.defaults ?? {};
      let content: string;
      if (panel.type === 'stat') {
        const stats = series.map((s) => {
          const last = s.points.at(-1)?.[1];
          const mapped =
            last === undefined ? undefined : defaults.mappings?.[0]?.options[String(last)];
          const text =
            last === undefined ? 'No data' : (mapped?.text ?? formatValue(last, defaults.unit));
          const color = mapped?.color === 'red' ? '#f2495c' : '#73bf69';
          return `<div class="stat" style="color:${color}">${escapeHtml(text)}<span>${escapeHtml(s.legend)}</span></div>`;
        });
        content = `<div class="stats">${stats.join('') || '<div class="stat">No data</div>'}</div>`;
      } else {
        const legend = series
          .map(
            (s, i) =>
              `<span><i style="background:${COLORS[i % COLORS.length]}"></i>${escapeHtml(s.legend)}</span>`,
          )
          .join('');
        content =
          series.length === 0
            ? '<div class="nodata">No data</div>'
            : chart(panel, series, start, end, w * colW - 24, h * rowH - 70) +
              `<div class="legend">${legend}</div>`;
      }
      return `<div class="panel" style="${box}"><h3>${escapeHtml(panel.title)}</h3>${content}</div>`;
    })
    .join('\n');
  const height = Math.max(...panels.map((p) => (p.gridPos.y + p.gridPos.h) * rowH)) + 60;
  return `<!doctype html><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body{margin:0;background:#111217;color:#ccccdc;font:12px Inter,Helvetica,Arial,sans-serif}
header{height:44px;display:flex;align-items:center;gap:16px;padding:0 12px;border-bottom:1px solid #2c3235}
header b{font-size:16px;color:#fff}header small{color:#8e8e9e}
main{position:relative;margin:12px;height:${height}px}
.panel{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:3px;padding:4px 8px;box-sizing:border-box;overflow:hidden}
.panel h3{margin:2px 0 4px;font-size:12px;font-weight:500;color:#ccccdc}
.row{position:absolute;font-size:14px;font-weight:500;color:#fff;padding-top:6px}
.stats{display:flex;gap:12px;justify-content:center;align-items:center;height:calc(100% - 24px)}
.stat{font-size:30px;font-weight:500;text-align:center}.stat span{display:block;font-size:11px;color:#8e8e9e}
svg text{fill:#8e8e9e;font-size:10px}
.legend{display:flex;flex-wrap:wrap;gap:4px 12px;font-size:11px}.legend i{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
.nodata{color:#8e8e9e;text-align:center;margin-top:60px}
</style>
<header><b>${escapeHtml(title)}</b><small>${escapeHtml(note)}</small></header>
<main>${body}</main>`;
}

function startProcess(cmd: string, args: string[]): ChildProcess {
  return spawn(cmd, args, { stdio: 'ignore' });
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function main(): Promise<void> {
  const out = process.env.SNAPSHOT_OUT ?? join(ROOT, 'docs', 'images', 'dashboard.png');
  const seconds = Number(process.env.SNAPSHOT_SECONDS ?? 90);
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    title: string;
    panels: Panel[];
  };
  const prometheusBin = which('prometheus', ['/usr/bin/prometheus']);
  if (!prometheusBin) throw new Error('prometheus is not installed: apt-get install prometheus');
  const work = mkdtempSync(join(tmpdir(), 'streamcast-snapshot-'));
  const redisPort = await freePort();
  const redisArgs = [
    '--port',
    String(redisPort),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
  ];
  let redis: ChildProcess | undefined;
  let prometheus: ChildProcess | undefined;
  let load: ChildProcess | undefined;
  const gateways: GatewayProcess[] = [];
  const log = (line: string) => process.stderr.write(`dashboard-snapshot: ${line}\n`);
  try {
    redis = startProcess(redisServerPath(), redisArgs);
    const env = { REDIS_URL: `redis://127.0.0.1:${redisPort}`, REDIS_PREFIX: 'snapshot' };
    const script = join(ROOT, 'apps', 'gateway', 'dist', 'main.js');
    await sleep(300);
    gateways.push(
      ...(await Promise.all([0, 1].map(() => startGatewayProcess(env, { script, execArgv: [] })))),
    );
    const promPort = await freePort();
    const targets = gateways.map((g) => `"${g.url.replace('http://', '')}"`).join(', ');
    writeFileSync(
      join(work, 'prometheus.yml'),
      `global: { scrape_interval: 1s, evaluation_interval: 1s }\nscrape_configs:\n  - job_name: streamcast\n    static_configs: [{ targets: [${targets}] }]\n`,
    );
    prometheus = startProcess(prometheusBin, [
      `--config.file=${join(work, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(work, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ]);
    const promUrl = `http://127.0.0.1:${promPort}`;
    await waitUntil('Prometheus', async () => (await fetch(`${promUrl}/-/ready`)).ok);
    const start = Date.now() / 1000;
    log(`load for ${seconds} s on ${gateways.map((g) => g.url).join(' and ')}`);
    load = spawn(
      process.execPath,
      [
        join(ROOT, 'apps', 'loadtest', 'dist', 'main.js'),
        ...gateways.flatMap((g) => ['--url', g.url]),
        ...[
          '-c',
          '600',
          '--topics',
          '20',
          '-r',
          '300',
          '-d',
          String(seconds - 15),
          '--ramp',
          '100',
        ],
        ...['--quiet', '--out', join(work, 'load')],
      ],
      { stdio: 'ignore' },
    );
    const loadDone = new Promise((resolve) => load?.once('exit', resolve));
    // Halfway: Redis dies and comes back empty. Streams stay open, publishes answer 503 a
    // moment, then every stream gets its reset (history lost) and goes on live.
    await sleep((seconds / 2) * 1000);
    log('Redis killed, restarted empty in 3 s');
    redis.kill('SIGKILL');
    await sleep(3000);
    redis = startProcess(redisServerPath(), redisArgs);
    await loadDone;
    // The window ends as the load tester leaves (its streams close then), once scraped.
    const end = Date.now() / 1000 - 1;
    await sleep(3000);
    const data = await queryPanels(promUrl, dashboard.panels, start, end);
    const html = renderDashboard(
      dashboard.title,
      dashboard.panels,
      data,
      start,
      end,
      `infra/grafana/dashboards/streamcast.json, its queries run in Prometheus over ${Math.round(end - start)} s: ` +
        `2 gateways, 600 streams, 300 events/s, Redis restarted empty halfway (drawn by scripts/dashboard-snapshot.ts)`,
    );
    writeFileSync(join(work, 'dashboard.html'), html);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1460, height: 900 } });
      await page.goto(`file://${join(work, 'dashboard.html')}`);
      mkdirSync(dirname(out), { recursive: true });
      await page.screenshot({ path: out, fullPage: true });
    } finally {
      await browser.close();
    }
    log(`wrote ${out}`);
  } finally {
    load?.kill('SIGTERM');
    await stopProcess(prometheus);
    await Promise.all(gateways.map((g) => g.stop()));
    await stopProcess(redis);
    rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`dashboard-snapshot: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
