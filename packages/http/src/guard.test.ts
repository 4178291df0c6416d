import { Authorizer } from '@streamcast/auth';
import { mintToken } from '@streamcast/testing';
import { Guard } from './guard';

const SECRET = 'a-secret-of-at-least-thirty-two-bytes!!';

describe('Guard: a batch against the publish rate', () => {
  it('takes a batch as its events, refuses it whole when over, and one above the rate as too large', async () => {
    const guard = new Guard({ auth: new Authorizer({ secret: SECRET }), publishRatePerMin: 10 });
    const token = await mintToken({ key: SECRET, claims: { sub: 'p', sse: { publish: ['*'] } } });
    const req = {
      headers: { authorization: `Bearer ${token}` },
      queryToken: undefined,
      ip: '192.0.2.1',
    };
    const admit = async (events: number) => {
      const principal = await guard.admitPublish(req);
      guard.admitBatch(req, principal, events);
    };
    await admit(6);
    // 4 left: admitPublish takes 1, and the 4 more the batch needs are one too many.
    await expect(admit(5)).rejects.toMatchObject({ code: 'RATE_LIMITED', statusCode: 429 });
    await expect(admit(11)).rejects.toMatchObject({ code: 'BATCH_TOO_LARGE', statusCode: 413 });
    // The refused batches cost nothing: the 4 left are still there, and no more.
    await admit(4);
    await expect(admit(1)).rejects.toMatchObject({ code: 'RATE_LIMITED' });
    expect(guard.refusals.get('RATE_LIMITED')).toBe(2);
    expect(guard.refusals.get('BATCH_TOO_LARGE')).toBe(1);
  });

  it('does not limit batches without keys (loopback publishing)', async () => {
    const guard = new Guard({ publishRatePerMin: 1 });
    const req = { headers: {}, queryToken: undefined, ip: '127.0.0.1' };
    const principal = await guard.admitPublish(req);
    expect(() => guard.admitBatch(req, principal, 1000)).not.toThrow();
  });
});
