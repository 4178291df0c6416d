import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { makePng } from '@streamcast/testing';
import { PermanentUploadError, processFile } from './process-file';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe('processFile', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'streamcast-process-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function file(name: string, content: Buffer | string): string {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  }

  it('counts the lines and words of text and hashes it', async () => {
    const text = 'hello world\n  two\tlines here\n\nlast line without newline';
    const facts = await processFile(file('a', text), { declaredType: 'text/plain' });
    expect(facts).toEqual({
      size: Buffer.byteLength(text),
      sha256: sha256(text),
      mime: 'text/plain',
      lines: 4,
      words: 9,
    });
  });

  it('reads text across chunks, multi-byte characters split between them, and keeps the declared text type', async () => {
    const line = '价格 update €1\n';
    const text = line.repeat(5000);
    const seen: number[] = [];
    const facts = await processFile(file('b', text), {
      declaredType: 'text/csv; charset=utf-8',
      chunkBytes: 4099, // not a multiple of anything in the text
      onProgress: (bytes) => {
        seen.push(bytes);
      },
    });
    expect(facts).toMatchObject({
      mime: 'text/csv',
      lines: 5000,
      words: 15000,
      sha256: sha256(text),
    });
    expect(seen.at(-1)).toBe(Buffer.byteLength(text));
    expect([...seen].sort((x, y) => x - y)).toEqual(seen);
  });

  it('reads the pixel dimensions of a PNG', async () => {
    const image = makePng(37, 21);
    const facts = await processFile(file('c', image), { declaredType: 'image/png' });
    expect(facts).toEqual({
      size: image.length,
      sha256: sha256(image),
      mime: 'image/png',
      width: 37,
      height: 21,
    });
  });

  it('detects the type from the content, not the declared type', async () => {
    const image = makePng(3, 4);
    const facts = await processFile(file('d', image), { declaredType: 'application/octet-stream' });
    expect(facts).toMatchObject({ mime: 'image/png', width: 3, height: 4 });
  });

  it('takes content that is not UTF-8 for binary, without text counts', async () => {
    const data = Buffer.concat([
      Buffer.from('almost text '),
      Buffer.from([0xff, 0xfe, 0x00, 0x41]),
    ]);
    const facts = await processFile(file('e', data));
    expect(facts).toEqual({
      size: data.length,
      sha256: sha256(data),
      mime: 'application/octet-stream',
    });
    // A character cut off by the end of the file is not UTF-8 either.
    const cut = Buffer.concat([Buffer.from('text then half a 价'), Buffer.from([0xe4, 0xb8])]);
    expect((await processFile(file('e2', cut), { chunkBytes: 4096 })).mime).toBe(
      'application/octet-stream',
    );
  });

  it('takes an empty file for empty text', async () => {
    expect(await processFile(file('f', ''))).toEqual({
      size: 0,
      sha256: sha256(''),
      mime: 'text/plain',
      lines: 0,
      words: 0,
    });
  });

  it('refuses a detected type outside the accepted list at once, without reading on', async () => {
    const gz = gzipSync(randomBytes(2 * 1024 * 1024));
    const progress: number[] = [];
    const err = await processFile(file('g', gz), {
      types: ['text/*', 'image/*', 'application/octet-stream'],
      declaredType: 'application/octet-stream',
      onProgress: (bytes) => {
        progress.push(bytes);
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentUploadError);
    expect(err).toMatchObject({ code: 'FILE_TYPE_UNSUPPORTED' });
    expect((err as Error).message).toContain('application/gzip');
    expect(progress).toEqual([]);
  });

  it('calls a file corrupt when its content contradicts its declared image type or its header is broken', async () => {
    const notImage = await processFile(file('h', 'just words'), {
      declaredType: 'image/png',
    }).catch((e: unknown) => e);
    expect(notImage).toMatchObject({ code: 'FILE_CORRUPT' });
    const broken = makePng(5, 5);
    broken.write('XXXX', 12, 'ascii'); // the IHDR chunk's name
    const err = await processFile(file('i', broken), { declaredType: 'image/png' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PermanentUploadError);
    expect(err).toMatchObject({ code: 'FILE_CORRUPT' });
  });

  it('says a missing file is gone for good', async () => {
    await expect(processFile(join(dir, 'nothing'))).rejects.toMatchObject({ code: 'FILE_MISSING' });
  });

  it('reads no faster than readBytesPerS', async () => {
    const data = randomBytes(300 * 1024);
    const started = Date.now();
    await processFile(file('j', data), { readBytesPerS: 1024 * 1024, chunkBytes: 64 * 1024 });
    // 300 KiB at 1 MiB/s: about 290 ms (the first chunk is free)
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
  });

  it('stops when its signal is aborted', async () => {
    const controller = new AbortController();
    const promise = processFile(file('k', randomBytes(512 * 1024)), {
      readBytesPerS: 256 * 1024,
      chunkBytes: 64 * 1024,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(new Error('stop')), 100);
    await expect(promise).rejects.toThrow(/stop|abort/);
  });
});
