import { randomBytes } from 'node:crypto';
import { crc32, deflateSync } from 'node:zlib';

/** A real PNG of `width` × `height` RGB pixels. */
export function makePng(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
  const rows = Buffer.alloc((width * 3 + 1) * height, 0x7f);
  for (let y = 0; y < height; y++) rows[y * (width * 3 + 1)] = 0; // filter byte: none
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Start of `opaqueBytes`: a NUL (not text) and no magic number that a content sniffer knows. */
const OPAQUE_PREFIX = Buffer.from('\0streamcast: opaque test bytes\0', 'latin1');

/**
 * `size` bytes of random binary that content sniffing can never take for a known type. Plain
 * `randomBytes` can: about 1 in 1,700 starts like an MP3 frame, AAC, MPEG-TS or compress header,
 * and an upload of it declared `application/octet-stream` is then refused as that type.
 */
export function opaqueBytes(size: number): Buffer {
  const bytes = randomBytes(size);
  OPAQUE_PREFIX.copy(bytes, 0, 0, Math.min(size, OPAQUE_PREFIX.length));
  return bytes;
}
