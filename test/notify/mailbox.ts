// A real SMTP server that a test can take down, bring back on the same port, and make stall mid-send: it reads a
// message in full but does not answer it, as a server that hangs before its 250 would. Only answered messages count.
import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface ControlledMailbox {
  port: number;
  /** Messages the server answered 250 to, in order: what a sender may count as delivered. */
  accepted: ParsedMail[];
  /** Messages read in full while `stall` was on, never answered. */
  unanswered: ParsedMail[];
  /** While true, each message is read but never answered, so its sender waits mid-send. */
  stall: boolean;
  /** Recipients refused for good (550), as for a mailbox that does not exist. */
  refuse: Set<string>;
  /** Starts listening again, on the same port. */
  up(): Promise<void>;
  /** Stops listening and drops every connection: senders get a refused connection. */
  down(): Promise<void>;
  /** Messages accepted whose subject contains `text`. */
  acceptedWith(text: string): ParsedMail[];
}

export async function startControlledMailbox(): Promise<ControlledMailbox> {
  let server: SMTPServer | null = null;
  const box: ControlledMailbox = {
    port: 0,
    accepted: [],
    unanswered: [],
    stall: false,
    refuse: new Set(),
    async up() {
      const s = new SMTPServer({
        disabledCommands: ['STARTTLS'],
        authOptional: true,
        closeTimeout: 50,
        onRcptTo(address, _session, callback) {
          if (box.refuse.has(address.address)) {
            callback(Object.assign(new Error('No such mailbox'), { responseCode: 550 }));
          } else callback();
        },
        onData(stream, _session, callback) {
          simpleParser(stream)
            .then((mail) => {
              if (box.stall) box.unanswered.push(mail);
              else {
                box.accepted.push(mail);
                callback();
              }
            })
            .catch(callback);
        },
      });
      s.on('error', () => {}); // a client killed mid-send resets its connection
      await new Promise<void>((resolve) => s.listen(box.port, '127.0.0.1', resolve));
      box.port = (s.server.address() as AddressInfo).port;
      server = s;
    },
    async down() {
      const s = server;
      server = null;
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    acceptedWith(text) {
      return box.accepted.filter((m) => m.subject?.includes(text));
    },
  };
  await box.up();
  return box;
}

export function recipientOf(m: ParsedMail): string {
  const to = Array.isArray(m.to) ? m.to[0] : m.to;
  return to?.value[0]?.address ?? '';
}
