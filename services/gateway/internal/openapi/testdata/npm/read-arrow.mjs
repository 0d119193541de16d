// read-arrow.mjs FILE: reads an Arrow IPC stream (GET /v1/prices:export?format=EXPORT_FORMAT_ARROW)
// with Apache Arrow's own JavaScript implementation, as a user's notebook or service would,
// and prints its rows as JSON: symbol, time (RFC 3339), close (exact decimal text), volume.
import { readFileSync } from "node:fs";
import { tableFromIPC } from "apache-arrow";

const table = tableFromIPC(readFileSync(process.argv[2]));
const closeField = table.schema.fields.find((f) => f.name === "close");
const scale = closeField.type.scale;

// decimal renders an Arrow decimal128 (four little-endian 32-bit words, two's complement)
// exactly, as text with scale fraction digits.
function decimal(words) {
  let v = 0n;
  for (let i = 3; i >= 0; i--) v = (v << 32n) | BigInt(words[i] >>> 0);
  if (v >= 1n << 127n) v -= 1n << 128n;
  const neg = v < 0n;
  const digits = (neg ? -v : v).toString().padStart(scale + 1, "0");
  const text = scale > 0 ? digits.slice(0, -scale) + "." + digits.slice(-scale) : digits;
  return (neg ? "-" : "") + text;
}

const rows = [];
for (const row of table) {
  rows.push({
    symbol: row.symbol,
    time: new Date(Number(row.time)).toISOString(), // arrow JS gives timestamps in ms
    close: decimal(row.close),
    volume: row.volume.toString(),
  });
}
console.log(JSON.stringify({ fields: table.schema.fields.map((f) => `${f.name}:${f.type}`), rows }));
