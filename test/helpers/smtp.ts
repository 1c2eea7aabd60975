import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface Mailbox {
  port: number;
  /** Every message received, parsed, in the order it arrived. */
  inbox: ParsedMail[];
  /** Successful logins; stays 0 on a mailbox without a login. */
  logins: number;
  close(): Promise<void>;
}

/**
 * A real SMTP server on an ephemeral port that keeps every message it receives. With `login` it takes mail only
 * after a login with exactly those credentials (over plain text, as there is no TLS here); without it, from anyone.
 */
export async function startMailbox(login?: { user: string; pass: string }): Promise<Mailbox> {
  const inbox: ParsedMail[] = [];
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    ...(login
      ? {
          allowInsecureAuth: true,
          onAuth(auth, _session, callback) {
            if (auth.username === login.user && auth.password === login.pass) {
              mailbox.logins++;
              callback(null, { user: auth.username });
            } else callback(new Error('bad credentials'));
          },
        }
      : { authOptional: true }),
    onData(stream, _session, callback) {
      simpleParser(stream)
        .then((mail) => {
          inbox.push(mail);
          callback();
        })
        .catch(callback);
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const mailbox: Mailbox = {
    port: (server.server.address() as AddressInfo).port,
    inbox,
    logins: 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return mailbox;
}
