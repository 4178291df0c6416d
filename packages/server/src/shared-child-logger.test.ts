import Fastify from 'fastify';
import pino from 'pino';
import { sharedChildLogger } from './shared-child-logger';

/**
 * The gateway's Fastify logger: a request's logger is the app's own (no child, no bindings, per
 * request), and every other child is pino's, with its bindings.
 */
describe('sharedChildLogger', () => {
  it("gives every request the app's logger, and other children their bindings", async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const app = Fastify({ loggerInstance: sharedChildLogger(log), disableRequestLogging: true });
    const requestLoggers: unknown[] = [];
    app.get('/', async (request) => {
      requestLoggers.push(request.log);
      request.log.warn({ n: requestLoggers.length }, 'from a request');
      return 'ok';
    });
    try {
      const url = await app.listen({ host: '127.0.0.1', port: 0 });
      for (let i = 0; i < 2; i++) expect((await fetch(url)).status).toBe(200);
      app.log.child({ component: 'c' }).warn('from a component');
      expect(requestLoggers).toEqual([app.log, app.log]);
      expect(requestLoggers[0]).toBe(requestLoggers[1]);
      const warnings = lines.filter((line) => line.level === 40);
      expect(
        warnings.map(({ msg, n, component, reqId }) => ({ msg, n, component, reqId })),
      ).toEqual([
        { msg: 'from a request', n: 1, component: undefined, reqId: undefined },
        { msg: 'from a request', n: 2, component: undefined, reqId: undefined },
        { msg: 'from a component', n: undefined, component: 'c', reqId: undefined },
      ]);
      // A child with options (a route's logLevel) is pino's too.
      expect(app.log.child({ reqId: 'r' }, { level: 'error' })).not.toBe(app.log);
    } finally {
      await app.close();
    }
  });
});
