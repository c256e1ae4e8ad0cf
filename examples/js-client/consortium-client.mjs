// A minimal consortium node client in JavaScript (Node >= 20), written from the README's
// "Signing requests" section alone: it signs one request with a member's account key and prints
// the node's answer. Dependencies: @noble/curves and @noble/hashes (npm devDependencies).
//
//   CONSORTIUM_PRIVATE_KEY=0x... node examples/js-client/consortium-client.mjs \
//       --url http://127.0.0.1:8700 --audience 0xNODE_ADDRESS --chain-id 31337 [--method GET] [--path /governance/members]
//
// The key comes from the environment only (never an argument: arguments show in `ps`).
// --tamper-path /other signs --path but sends /other: the node must answer 401 (bad_signature).
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, hexToBytes, randomBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { pathToFileURL } from 'node:url';

function parseArgs(argv) {
  const out = { method: 'GET', path: '/governance/members', body: '' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    out[key] = argv[i + 1];
  }
  for (const required of ['url', 'audience', 'chainId']) {
    if (!out[required]) throw new Error(`missing --${required.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`);
  }
  return out;
}

const strip0x = (hex) => hex.replace(/^0x/i, '');
const keccakText = (text) => keccak_256(utf8ToBytes(text));
const uint256 = (value) => hexToBytes(BigInt(value).toString(16).padStart(64, '0'));

// EIP-712: encodeData of NodeRequest under the domain (name "ConsortiumNode", version "1", chainId).
const DOMAIN_TYPEHASH = keccakText('EIP712Domain(string name,string version,uint256 chainId)');
const REQUEST_TYPEHASH = keccakText(
  'NodeRequest(string method,string path,bytes32 bodyHash,uint64 timestamp,bytes32 nonce,address audience)');

export function requestDigest({ chainId, method, path, body, timestamp, nonce, audience }) {
  const domainSeparator = keccak_256(concatBytes(
    DOMAIN_TYPEHASH, keccakText('ConsortiumNode'), keccakText('1'), uint256(chainId)));
  const struct = keccak_256(concatBytes(
    REQUEST_TYPEHASH,
    keccakText(method.toUpperCase()),
    keccakText(path),
    sha256(body),                                       // bodyHash: SHA-256 of the raw body bytes
    uint256(timestamp),                                 // uint64, left-padded to 32 bytes
    nonce,                                              // bytes32 as is
    concatBytes(new Uint8Array(12), hexToBytes(strip0x(audience))),  // address, left-padded
  ));
  return keccak_256(concatBytes(new Uint8Array([0x19, 0x01]), domainSeparator, struct));
}

export function addressOf(privateKey) {
  const publicKey = secp256k1.getPublicKey(privateKey, false);  // 65 bytes: 0x04 || x || y
  return '0x' + bytesToHex(keccak_256(publicKey.slice(1)).slice(-20));
}

export function signRequest(privateKey, fields) {
  const digest = requestDigest(fields);
  // 'recovered' is recovery byte || r || s; the node wants r || s || v with v = 27 + recovery (low s).
  const sig = secp256k1.sign(digest, privateKey, { prehash: false, lowS: true, format: 'recovered' });
  const signature = concatBytes(sig.slice(1, 65), new Uint8Array([27 + sig[0]]));
  return {
    'x-consortium-signer': addressOf(privateKey),
    'x-consortium-timestamp': String(fields.timestamp),
    'x-consortium-nonce': bytesToHex(fields.nonce),
    'x-consortium-signature': bytesToHex(signature),
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const key = process.env.CONSORTIUM_PRIVATE_KEY;
  if (!key) throw new Error('set CONSORTIUM_PRIVATE_KEY to the member account key (hex)');
  const privateKey = hexToBytes(strip0x(key));
  const body = utf8ToBytes(args.body);
  const headers = signRequest(privateKey, {
    chainId: args.chainId, method: args.method, path: args.path, body,
    timestamp: Math.floor(Date.now() / 1000), nonce: randomBytes(32), audience: args.audience,
  });
  if (body.length) headers['content-type'] = 'application/json';
  const sent = args.tamperPath ?? args.path;  // --tamper-path: send another target than the one signed
  const response = await fetch(args.url.replace(/\/$/, '') + sent, {
    method: args.method, headers, body: body.length ? body : undefined,
  });
  console.log(JSON.stringify({ status: response.status, body: await response.json().catch(() => null) }));
  process.exitCode = response.ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {  // run, not imported
  main().catch((err) => { console.error(`consortium-client: error: ${err.message}`); process.exitCode = 2; });
}
