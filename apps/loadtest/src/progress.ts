import type { LiveFigures } from './run-load-test';

const WIDTH = 24;

function num(v: number): string {
  return Math.round(v).toLocaleString('en-US');
}

/**
 * Live figures on stderr: one redrawn line with a bar on a terminal, a plain line every five
 * seconds otherwise (a log file or CI keeps a readable trace), nothing with --quiet.
 */
export class ProgressLine {
  private lastPlain = 0;
  private drawn = false;
  private readonly tty: boolean;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly quiet: boolean,
  ) {
    this.tty = stream.isTTY === true;
  }

  update(live: LiveFigures): void {
    if (this.quiet) return;
    const figures =
      `${live.phase.padEnd(10)} ${live.elapsedS.toFixed(1).padStart(6)} s  ` +
      `conns ${num(live.connectionsOpen)}/${num(live.connectionsAsked)}` +
      (live.reconnecting > 0 ? ` (+${num(live.reconnecting)} reconnecting)` : '') +
      (live.failed > 0 ? ` ${num(live.failed)} failed` : '') +
      `  pub ${num(live.eventsPerSec)}/s  recv ${num(live.deliveriesPerSec)}/s  errors ${num(live.errors)}`;
    if (this.tty) {
      const full = Math.round(live.fraction * WIDTH);
      const bar = `[${'#'.repeat(full)}${'-'.repeat(WIDTH - full)}] ${String(Math.round(live.fraction * 100)).padStart(3)}%`;
      const columns = this.stream.columns ?? 120;
      this.stream.write(`\r\x1b[K${`${bar} ${figures}`.slice(0, columns - 1)}`);
      this.drawn = true;
    } else if (live.elapsedS - this.lastPlain >= 5 || live.phase === 'reporting') {
      this.lastPlain = live.elapsedS;
      this.stream.write(`loadtest: ${figures}\n`);
    }
  }

  /** A message on its own line, keeping the bar intact. */
  note(text: string): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.stream.write(`loadtest: ${text}\n`);
  }

  done(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}
