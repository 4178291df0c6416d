/**
 * A wrong producer name, option or value: the runner prints the message (one line) and exits 2.
 * Messages name the culprit and say what is accepted.
 */
export class UsageError extends Error {
  readonly code = 'PRODUCER_USAGE';

  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
