import { telemetry } from './telemetry';
import { gatewaySchema, loadEnvOrExit } from '@streamcast/config';
import { buildGateway, listenUntilSignalled } from '@streamcast/server';

/** `npm run gateway`: one gateway process, nothing else. */
async function main(): Promise<void> {
  const config = loadEnvOrExit(gatewaySchema);
  const { app, engine, hub } = await buildGateway(config, undefined, telemetry?.tracing);
  // Spans still in the exporter's batch go out before the process exits.
  const shutdown = telemetry?.shutdown;
  if (shutdown) app.addHook('onClose', () => shutdown());
  await listenUntilSignalled(app, {
    port: config.PORT,
    host: config.HOST,
    drainMs: config.DRAIN_S * 1000,
    drain: (ms) => hub.drain(ms),
  });
  app.log.info(
    { engine: engine.kind, port: config.PORT, tracing: telemetry !== undefined },
    'gateway ready',
  );
}

main().catch((err) => {
  process.stderr.write(`gateway: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
