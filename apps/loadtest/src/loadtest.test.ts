import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SOURCE_EXEC_ARGV, startGatewayProcess, type GatewayProcess } from '@streamcast/testing';
import type { LoadTestResult } from './run-load-test';

/**
 * The load tester as a person runs it: a child process against a real gateway (memory engine),
 * its exit code, its JSON result and its chart.
 */
const ROOT = join(__dirname, '..', '..', '..');
const MAIN = join(__dirname, 'main.ts');

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...SOURCE_EXEC_ARGV, MAIN, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('streamcast-loadtest', () => {
  let gateway: GatewayProcess | undefined;
  let out: string | undefined;

  afterEach(async () => {
    await gateway?.stop();
    gateway = undefined;
    if (out) rmSync(out, { recursive: true, force: true });
    out = undefined;
  });

  it('delivers every event to every connection exactly once and writes the JSON result and the chart', async () => {
    gateway = await startGatewayProcess({});
    out = mkdtempSync(join(tmpdir(), 'loadtest-'));
    const run = await runCli([
      '--url',
      gateway.url,
      '--connections',
      '50',
      '--topics',
      '5',
      '--events',
      '100',
      '--rate',
      '200',
      '--duration',
      '30',
      '--out',
      out,
      '--quiet',
    ]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(run.stdout).toContain('lost 0');

    const result = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as LoadTestResult;
    expect(result.ok).toBe(true);
    expect(result.connections).toMatchObject({ asked: 50, opened: 50, failed: 0, held: 50 });
    expect(result.publish).toMatchObject({ sent: 100, acked: 100, failed: 0 });
    // 100 events over 5 topics, 10 connections per topic: each connection is owed 20.
    expect(result.events.expected).toBe(50 * 20);
    expect(result.events.delivered).toBe(result.events.expected);
    expect(result.events.lost).toBe(0);
    expect(result.events.duplicated).toBe(0);
    expect(result.perConnection).toHaveLength(50);
    for (const c of result.perConnection) {
      expect(c).toMatchObject({ expected: 20, delivered: 20, lost: 0, duplicated: 0 });
    }
    expect(result.latencyMs.count).toBe(1000);
    expect(result.latencyMs.p99).toBeGreaterThan(0);
    expect(result.latencyMs.max).toBeGreaterThanOrEqual(result.latencyMs.p99);
    const server = result.servers[0];
    expect(server?.available).toBe(true);
    expect(server?.deltas.sse_events_delivered_total).toBe(1000);

    const svg = readFileSync(join(out, 'report.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('Latency over time');
    expect(svg).toContain('Latency distribution');
  });

  it('refuses an address that is not loopback unless it is listed with --target', async () => {
    const run = await runCli(['--url', 'http://192.0.2.10:3000', '-c', '1', '-d', '1']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--url 192.0.2.10: not a loopback address');
    expect(run.stderr).toContain('--target');
  });

  it('explains every option with --help', async () => {
    const run = await runCli(['--help']);
    expect(run.code).toBe(0);
    for (const option of [
      '--url',
      '--path',
      '--publish-url',
      '--redis',
      '--redis-cluster',
      '--prefix',
      '--metrics-url',
      '--token',
      '--target',
      '--connections',
      '--topics',
      '--topic-prefix',
      '--rate',
      '--duration',
      '--events',
      '--ramp',
      '--payload',
      '--concurrency',
      '--processes',
      '--no-reconnect',
      '--drain-timeout',
      '--connect-timeout',
      '--out',
      '--json',
      '--quiet',
      '--help',
    ]) {
      expect(run.stdout).toContain(option);
    }
  });
});
