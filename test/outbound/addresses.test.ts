// The SSRF filter judges every IPv6 spelling that carries an IPv4 address by that IPv4 address: each form below is
// refused when it carries loopback, private or metadata addresses, and let through when it carries a public one.
import { afterAll, describe, expect, it } from 'vitest';
import { AirlockError } from '../../src/errors.ts';
import { embeddedIpv4, isPrivateAddress } from '../../src/outbound/addresses.ts';
import { OutboundHttp } from '../../src/outbound/http.ts';

/** One way of writing an IPv4 address inside IPv6. */
interface Form {
  name: string;
  spell(v4: string): string[];
}

const hex = (v4: string) => {
  const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number];
  return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)] as const;
};
const inverted = (v4: string) => {
  const [a, b, c, d] = v4.split('.').map((n) => 255 - Number(n)) as [number, number, number, number];
  return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)] as const;
};

const FORMS: Form[] = [
  { name: 'plain IPv4', spell: (v4) => [v4] },
  {
    name: 'IPv4-mapped (::ffff:0:0/96)',
    spell: (v4) => {
      const [hi, lo] = hex(v4);
      return [
        `::ffff:${v4}`,
        `::ffff:${hi}:${lo}`,
        `::FFFF:${hi.toUpperCase()}:${lo}`,
        `0:0:0:0:0:ffff:${hi}:${lo}`,
        `0000:0000:0000:0000:0000:ffff:${v4}`,
      ];
    },
  },
  {
    name: 'IPv4-compatible (::/96)',
    spell: (v4) => {
      const [hi, lo] = hex(v4);
      return [`::${v4}`, `::${hi}:${lo}`, `0:0:0:0:0:0:${hi}:${lo}`];
    },
  },
  {
    name: 'IPv4-translated (::ffff:0:0:0/96)',
    spell: (v4) => {
      const [hi, lo] = hex(v4);
      return [`::ffff:0:${v4}`, `::ffff:0:${hi}:${lo}`, `0:0:0:0:ffff:0:${hi}:${lo}`];
    },
  },
  {
    name: 'NAT64 (64:ff9b::/96)',
    spell: (v4) => {
      const [hi, lo] = hex(v4);
      return [`64:ff9b::${v4}`, `64:ff9b::${hi}:${lo}`, `0064:ff9b:0:0:0:0:${hi}:${lo}`];
    },
  },
  {
    name: '6to4 (2002::/16)',
    spell: (v4) => {
      const [hi, lo] = hex(v4);
      return [`2002:${hi}:${lo}::`, `2002:${hi}:${lo}::1`, `2002:${hi}:${lo}:1:2:3:4:5`];
    },
  },
  {
    name: 'Teredo client (2001::/32, obfuscated)',
    // The server 65.54.227.120 is public; the client address is stored inverted in the last 32 bits.
    spell: (v4) => {
      const [hi, lo] = inverted(v4);
      return [`2001:0:4136:e378:8000:63bf:${hi}:${lo}`, `2001::4136:e378:0:0:${hi}:${lo}`];
    },
  },
  {
    name: 'Teredo server (2001::/32)',
    // The client 8.8.8.8 (inverted: f7f7:f7f7) is public; the server is the address under test.
    spell: (v4) => {
      const [hi, lo] = hex(v4);
      return [`2001:0:${hi}:${lo}:8000:63bf:f7f7:f7f7`];
    },
  },
];

const BLOCKED_V4 = [
  '127.0.0.1',
  '127.255.255.254',
  '10.1.2.3',
  '172.16.0.1',
  '192.168.1.1',
  '169.254.169.254',
  '100.64.0.1',
  '0.0.0.0',
  '224.0.0.1',
  '255.255.255.255',
];
const PUBLIC_V4 = ['8.8.8.8', '1.1.1.1', '93.184.216.34'];

describe('IPv6 forms that carry an IPv4 address', () => {
  for (const form of FORMS) {
    it(`${form.name}: refuses loopback, private and metadata addresses`, () => {
      for (const v4 of BLOCKED_V4) {
        for (const address of form.spell(v4)) {
          expect(isPrivateAddress(address), `${address} (${v4})`).toBe(true);
        }
      }
    });

    it(`${form.name}: lets public addresses through`, () => {
      for (const v4 of PUBLIC_V4) {
        for (const address of form.spell(v4)) {
          expect(isPrivateAddress(address), `${address} (${v4})`).toBe(false);
          if (address !== v4) expect(embeddedIpv4(address)).toContain(v4);
        }
      }
    });
  }
});

describe('other IPv6 addresses', () => {
  it.each([
    ['::1', true],
    ['::', true],
    ['0:0:0:0:0:0:0:1', true],
    ['fe80::1', true],
    ['fe80::1%eth0', true],
    ['fd00::1', true],
    ['fc00::1', true],
    ['fec0::1', true],
    ['ff02::1', true],
    ['2001:db8::1', true],
    ['100::1', true],
    ['64:ff9b:1::808:808', true],
    ['2606:4700:4700::1111', false],
    ['2a00:1450:4001:81b::200e', false],
    ['not an address', true],
  ])('%s is refused: %s', (address, refused) => {
    expect(isPrivateAddress(address)).toBe(refused);
  });
});

describe('URLs an agent gives the actions API', () => {
  const http = new OutboundHttp([{ host: '*', allow_private: false, headers: {}, routes: [] }]);
  afterAll(async () => {
    await http.close();
  });

  // WHATWG URL parsing rewrites each of these to its canonical hex form before the filter sees it.
  it.each([
    'http://[::7f00:1]/',
    'http://[::127.0.0.1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:0:7f00:1]/',
    'http://[2002:7f00:1::]/',
    'http://[64:ff9b::a9fe:a9fe]/latest/meta-data/',
    'http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/',
    'http://[::ffff:a00:1]/',
    'http://[0:0:0:0:0:ffff:c0a8:101]/',
  ])('refuses %s', async (url) => {
    const err = await http.check(url).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AirlockError);
    expect((err as AirlockError).code).toBe('upstream_not_allowed');
  });

  it.each(['http://[::ffff:808:808]/', 'http://[64:ff9b::808:808]/', 'http://[2002:808:808::1]/'])(
    'accepts %s, which carries a public address',
    async (url) => {
      expect((await http.check(url)).toString()).toBe(url);
    },
  );
});
