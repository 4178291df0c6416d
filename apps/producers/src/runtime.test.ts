import { sleep, waitFor } from '@streamcast/testing';
import { mulberry32 } from './random';
import { ProducerRuntime } from './runtime';
import { RecordingPublisher } from './test-support';

const context = (
  extra: Partial<{ log: (m: string) => void; onError: (e: Error) => void }> = {},
) => ({
  random: mulberry32(1),
  log: () => {},
  ...extra,
});

describe('producer runtime', () => {
  let runtime: ProducerRuntime | undefined;
  afterEach(async () => {
    await runtime?.stop();
    runtime = undefined;
  });

  it('runs steps in virtual-time order, ties in scheduling order, whatever the timers do', async () => {
    const publisher = new RecordingPublisher();
    runtime = new ProducerRuntime('t', publisher, context());
    const rt = runtime;
    const order: string[] = [];
    const mark = (name: string) => () => {
      order.push(`${name}@${rt.elapsed}`);
      return [{ topic: 'test', event: 'step', data: name }];
    };
    rt.after(30, mark('c'));
    rt.after(10, mark('a'));
    rt.after(10, mark('b'));
    rt.after(0, () => {
      order.push(`first@${rt.elapsed}`);
      rt.after(10, mark('d')); // due at 10 too, scheduled last
    });
    await waitFor(
      () => order.length === 5,
      () => `5 steps (got ${order.join(' ')})`,
    );
    expect(order).toEqual(['first@0', 'a@10', 'b@10', 'd@10', 'c@30']);
    expect(publisher.events.map((e) => e.data)).toEqual(['a', 'b', 'd', 'c']);
  });

  it('stops after the publish in flight and publishes nothing more', async () => {
    const publisher = new RecordingPublisher();
    publisher.delayMs = 100;
    runtime = new ProducerRuntime('t', publisher, context());
    runtime.every(5, () => [
      { topic: 'a', event: 'e', data: 1 },
      { topic: 'a', event: 'e', data: 2 },
    ]);
    await waitFor(() => publisher.attempts >= 1, 'a publish in flight');
    await runtime.stop();
    // The publish in flight has settled: recorded before stop() resolved. The second of the
    // step was not started.
    expect(publisher.events).toHaveLength(1);
    const attempts = publisher.attempts;
    await sleep(150);
    expect(publisher.attempts).toBe(attempts);
  });

  it('carries on when publishes fail, reporting the first failure, then recovery', async () => {
    const publisher = new RecordingPublisher();
    publisher.fail = () => true;
    const errors: Error[] = [];
    const logs: string[] = [];
    runtime = new ProducerRuntime(
      't',
      publisher,
      context({ onError: (e) => errors.push(e), log: (m) => logs.push(m) }),
    );
    let n = 0;
    runtime.every(5, () => [{ topic: 'a', event: 'e', data: n++ }], 0);
    await waitFor(() => publisher.attempts >= 10, 'ten failed publishes');
    expect(errors).toHaveLength(1); // throttled: one report per 10 s of failures
    expect(errors[0]?.message).toContain('not stored');
    publisher.fail = undefined;
    await waitFor(() => publisher.events.length >= 2, 'publishes after recovery');
    expect(logs.some((m) => /^t: publishing again after \d+ failed publishes$/.test(m))).toBe(true);
  });

  it('reports a step that throws and keeps its loop going', async () => {
    const publisher = new RecordingPublisher();
    const logs: string[] = [];
    runtime = new ProducerRuntime('t', publisher, context({ log: (m) => logs.push(m) }));
    let n = 0;
    runtime.every(5, () => {
      n++;
      if (n === 1) throw new Error('boom');
      return [{ topic: 'a', event: 'e', data: n }];
    });
    await waitFor(() => publisher.events.length >= 2, 'steps after the failing one');
    expect(logs).toContain('t: step failed: boom');
  });
});
