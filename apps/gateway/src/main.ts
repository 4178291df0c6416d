import { gatewaySchema, loadEnvOrExit } from '@streamcast/config';
import { buildGateway } from './build-gateway';

async function main(): Promise<void> {
  const config = loadEnvOrExit(gatewaySchema);
  const { app, engine } = await buildGateway(config);
  await app.listen({ port: config.PORT, host: config.HOST });
  app.log.info({ engine: engine.kind, port: config.PORT }, 'gateway ready');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'stopping');
    app.close().then(
      () => process.exit(0),
      (err) => {
        app.log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('unhandledRejection', (err) => app.log.error({ err }, 'unhandled rejection'));
}

main().catch((err) => {
  process.stderr.write(`gateway: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
