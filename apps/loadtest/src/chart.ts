/**
 * The load test's picture, one self-contained SVG written by hand (no chart library): latency
 * over time (p50, p90, p99 and max per second, with the delivery rate behind them) and the
 * latency distribution (the percentile curve on a "nines" scale, as HdrHistogram plots it).
 * Both latency axes are logarithmic: a tail 100 times the median stays readable.
 */

export interface TimelinePoint {
  /** Seconds since publishing began (by send time). */
  second: number;
  /** Events received that were sent in this second, summed over connections. */
  deliveries: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface ChartInput {
  title: string;
  subtitle: string;
  timeline: TimelinePoint[];
  /** The percentile curve: percentile (0-100) → ms. */
  distribution: Array<{ percentile: number; ms: number }>;
  /** Points marked on the distribution (exact percentiles from the histogram). */
  marks?: Array<{ percentile: number; ms: number }>;
}

const W = 960;
const PANEL_H = 330;
const M = { left: 70, right: 80, top: 40, bottom: 46 };
const COLORS = { p50: '#1f77b4', p90: '#2ca02c', p99: '#d62728', max: '#9467bd', bars: '#e6e6e6' };

function esc(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function fmtMs(ms: number): string {
  if (ms >= 1000) return `${+(ms / 1000).toPrecision(3)} s`;
  if (ms >= 1) return `${+ms.toPrecision(3)} ms`;
  return `${+(ms * 1000).toPrecision(3)} µs`;
}

function fmtCount(n: number): string {
  if (n >= 1e6) return `${+(n / 1e6).toPrecision(3)}M`;
  if (n >= 1e3) return `${+(n / 1e3).toPrecision(3)}k`;
  return String(Math.round(n));
}

/** A log10 axis over [lo, hi] ms, widened to whole 1-2-5 steps. */
class LogAxis {
  readonly lo: number;
  readonly hi: number;
  constructor(values: number[]) {
    const positive = values.filter((v) => Number.isFinite(v) && v > 0);
    const min = positive.length ? Math.min(...positive) : 0.1;
    const max = positive.length ? Math.max(...positive) : 1;
    this.lo = 10 ** Math.floor(Math.log10(min));
    this.hi = Math.max(10 ** Math.ceil(Math.log10(max)), this.lo * 10);
  }
  /** 0 at lo, 1 at hi. */
  frac(v: number): number {
    const c = Math.min(Math.max(v, this.lo), this.hi);
    return (Math.log10(c) - Math.log10(this.lo)) / (Math.log10(this.hi) - Math.log10(this.lo));
  }
  ticks(): number[] {
    const out: number[] = [];
    for (let d = this.lo; d < this.hi * 1.001; d *= 10) {
      for (const m of [1, 2, 5]) if (d * m <= this.hi * 1.001) out.push(d * m);
    }
    return out;
  }
}

function niceStep(range: number, target: number): number {
  const raw = range / Math.max(1, target);
  const pow = 10 ** Math.floor(Math.log10(raw || 1));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

function polyline(
  points: Array<[number, number]>,
  color: string,
  width: number,
  dash = '',
): string {
  if (points.length === 0) return '';
  const d = points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
  const dashAttr = dash ? ` stroke-dasharray="${dash}"` : '';
  return `<polyline fill="none" stroke="${color}" stroke-width="${width}"${dashAttr} points="${d}"/>`;
}

function legend(x: number, y: number, items: Array<[string, string]>): string {
  return items
    .map(
      ([label, color], i) =>
        `<rect x="${x + i * 85}" y="${y - 7}" width="14" height="4" fill="${color}"/>` +
        `<text x="${x + i * 85 + 19}" y="${y - 2}" class="small">${esc(label)}</text>`,
    )
    .join('');
}

function timelinePanel(top: number, points: TimelinePoint[]): string {
  const x0 = M.left;
  const x1 = W - M.right;
  const y0 = top + M.top;
  const y1 = top + PANEL_H - M.bottom;
  const out: string[] = [
    `<text x="${x0}" y="${top + 22}" class="h2">Latency over time (publish → receive, by second of sending)</text>`,
  ];
  if (points.length === 0) {
    out.push(
      `<text x="${(x0 + x1) / 2}" y="${(y0 + y1) / 2}" text-anchor="middle">no events</text>`,
    );
    return out.join('');
  }
  const first = points[0]?.second ?? 0;
  const last = Math.max(first + 1, points[points.length - 1]?.second ?? 1);
  // Each second is a slot: half a slot of room at both ends for its bar.
  const sx = (s: number) => x0 + ((s - first + 0.5) / (last - first + 1)) * (x1 - x0);
  const axis = new LogAxis(points.flatMap((p) => [p.p50, p.max]));
  const sy = (ms: number) => y1 - axis.frac(ms) * (y1 - y0);
  // Delivery rate: bars behind the lines, on the right axis.
  const maxDeliveries = Math.max(1, ...points.map((p) => p.deliveries));
  const bw = Math.max(1, ((x1 - x0) / (last - first + 1)) * 0.8);
  for (const p of points) {
    const h = (p.deliveries / maxDeliveries) * (y1 - y0) * 0.9;
    out.push(
      `<rect x="${(sx(p.second) - bw / 2).toFixed(1)}" y="${(y1 - h).toFixed(1)}" width="${bw.toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS.bars}"/>`,
    );
  }
  out.push(
    `<text x="${x1 + 8}" y="${y1 - (y1 - y0) * 0.9}" class="small" fill="#888">${fmtCount(maxDeliveries)}/s</text>`,
    `<text x="${x1 + 8}" y="${y1}" class="small" fill="#888">0</text>`,
  );
  for (const t of axis.ticks()) {
    out.push(
      `<line x1="${x0}" x2="${x1}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" class="grid"/>`,
      `<text x="${x0 - 6}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end" class="small">${esc(fmtMs(t))}</text>`,
    );
  }
  const step = niceStep(last - first, 10);
  for (let s = Math.ceil(first / step) * step; s <= last; s += step) {
    out.push(
      `<line x1="${sx(s).toFixed(1)}" x2="${sx(s).toFixed(1)}" y1="${y0}" y2="${y1}" class="grid"/>`,
      `<text x="${sx(s).toFixed(1)}" y="${y1 + 16}" text-anchor="middle" class="small">${s}</text>`,
    );
  }
  out.push(
    `<text x="${(x0 + x1) / 2}" y="${y1 + 34}" text-anchor="middle" class="small">seconds since publishing began (bars: deliveries per second)</text>`,
    `<rect x="${x0}" y="${y0}" width="${x1 - x0}" height="${y1 - y0}" class="frame"/>`,
  );
  const line = (pick: (p: TimelinePoint) => number) =>
    points
      .filter((p) => p.deliveries > 0)
      .map((p): [number, number] => [sx(p.second), sy(pick(p))]);
  out.push(
    polyline(
      line((p) => p.max),
      COLORS.max,
      1,
      '3,3',
    ),
    polyline(
      line((p) => p.p99),
      COLORS.p99,
      2,
    ),
    polyline(
      line((p) => p.p90),
      COLORS.p90,
      1.5,
    ),
    polyline(
      line((p) => p.p50),
      COLORS.p50,
      2,
    ),
    legend(x1 - 330, top + 22, [
      ['p50', COLORS.p50],
      ['p90', COLORS.p90],
      ['p99', COLORS.p99],
      ['max', COLORS.max],
    ]),
  );
  return out.join('');
}

function distributionPanel(
  top: number,
  curve: Array<{ percentile: number; ms: number }>,
  marks: Array<{ percentile: number; ms: number }> | undefined,
): string {
  const x0 = M.left;
  const x1 = W - M.right;
  const y0 = top + M.top;
  const y1 = top + PANEL_H - M.bottom;
  const out: string[] = [
    `<text x="${x0}" y="${top + 22}" class="h2">Latency distribution (percentile curve)</text>`,
  ];
  if (curve.length === 0) {
    out.push(
      `<text x="${(x0 + x1) / 2}" y="${(y0 + y1) / 2}" text-anchor="middle">no events</text>`,
    );
    return out.join('');
  }
  // x: "nines" = -log10(1 - p/100); 100 % sits one step past the last finite point.
  const finite = curve.filter((c) => c.percentile < 100);
  const nines = (p: number) => -Math.log10(1 - p / 100);
  const maxNines = Math.max(1, Math.ceil(nines(finite[finite.length - 1]?.percentile ?? 90)));
  const sx = (n: number) => x0 + (n / maxNines) * (x1 - x0);
  const axis = new LogAxis(curve.map((c) => c.ms));
  const sy = (ms: number) => y1 - axis.frac(ms) * (y1 - y0);
  for (const t of axis.ticks()) {
    out.push(
      `<line x1="${x0}" x2="${x1}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" class="grid"/>`,
      `<text x="${x0 - 6}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end" class="small">${esc(fmtMs(t))}</text>`,
    );
  }
  const labels: Array<[number, string]> = [
    [0, '0%'],
    [nines(50), '50%'],
  ];
  for (let n = 1; n <= maxNines; n++)
    labels.push([n, `${(100 - 100 / 10 ** n).toFixed(Math.max(0, n - 2))}%`]);
  for (const [n, label] of labels) {
    out.push(
      `<line x1="${sx(n).toFixed(1)}" x2="${sx(n).toFixed(1)}" y1="${y0}" y2="${y1}" class="grid"/>`,
      `<text x="${sx(n).toFixed(1)}" y="${y1 + 16}" text-anchor="middle" class="small">${label}</text>`,
    );
  }
  out.push(
    `<text x="${(x0 + x1) / 2}" y="${y1 + 34}" text-anchor="middle" class="small">percentile (each step right is ten times rarer)</text>`,
    `<rect x="${x0}" y="${y0}" width="${x1 - x0}" height="${y1 - y0}" class="frame"/>`,
    polyline(
      finite.map((c): [number, number] => [sx(nines(c.percentile)), sy(c.ms)]),
      COLORS.p99,
      2,
    ),
  );
  const max = curve[curve.length - 1];
  if (max) {
    out.push(
      `<circle cx="${x1}" cy="${sy(max.ms).toFixed(1)}" r="3.5" fill="${COLORS.max}"/>`,
      `<text x="${x1 + 6}" y="${(sy(max.ms) + 4).toFixed(1)}" class="small">max ${esc(fmtMs(max.ms))}</text>`,
    );
  }
  // Marks at the usual percentiles (exact values when given, else read off the curve).
  const points =
    marks ??
    [50, 90, 99, 99.9].flatMap((p) => {
      const point = finite.find((c) => c.percentile >= p);
      return point ? [{ percentile: p, ms: point.ms }] : [];
    });
  for (const point of points) {
    if (!Number.isFinite(point.ms) || nines(point.percentile) > maxNines) continue;
    const x = sx(nines(point.percentile));
    const y = sy(point.ms);
    out.push(
      `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3" fill="${COLORS.p99}"/>`,
      // Left of the point, unless that would run into the axis labels.
      x - x0 > 120
        ? `<text x="${(x - 5).toFixed(1)}" y="${(y - 7).toFixed(1)}" text-anchor="end" class="small">p${point.percentile} ${esc(fmtMs(point.ms))}</text>`
        : `<text x="${(x + 5).toFixed(1)}" y="${(y + 14).toFixed(1)}" class="small">p${point.percentile} ${esc(fmtMs(point.ms))}</text>`,
    );
  }
  return out.join('');
}

/** The whole picture as an SVG document. */
export function renderChart(input: ChartInput): string {
  const height = 70 + 2 * PANEL_H;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="13">`,
    '<style>.h1{font-size:17px;font-weight:600}.h2{font-size:14px;font-weight:600}.small{font-size:11px;fill:#444}.grid{stroke:#ddd;stroke-width:1}.frame{fill:none;stroke:#999}</style>',
    `<rect width="${W}" height="${height}" fill="#fff"/>`,
    `<text x="${M.left}" y="26" class="h1">${esc(input.title)}</text>`,
    `<text x="${M.left}" y="48" class="small">${esc(input.subtitle)}</text>`,
    timelinePanel(60, input.timeline),
    distributionPanel(60 + PANEL_H, input.distribution, input.marks),
    '</svg>',
    '',
  ].join('\n');
}
