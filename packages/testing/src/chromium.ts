import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** The Debian `chromium` package's binary (scripts/test-all.sh installs it). */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Launches headless Chromium for the browser tests. Without the binary it throws: these tests
 * fail, they do not skip.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: install the Debian package chromium (scripts/test-all.sh does)`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
