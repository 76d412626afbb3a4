import net from 'node:net';

/**
 * A TCP forwarder in front of a real server that a test can unplug: `cut()` drops every open
 * connection and refuses new ones (the database "goes away"); `restore()` listens again on
 * the same port. `freeze()` keeps every connection open and answers nothing, as a server that
 * hangs or a network that drops packets silently; `thaw()` drops those connections and
 * forwards again.
 */
export async function startTcpProxy(target: { host: string; port: number }) {
  const sockets = new Set<net.Socket>();
  const pairs = new Set<[net.Socket, net.Socket]>();
  let frozen = false;
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  };
  const server = net.createServer((client) => {
    track(client);
    client.on('error', () => {});
    if (frozen) {
      client.pause(); // accepted, and never answered
      return;
    }
    const upstream = net.connect(target);
    track(upstream);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    for (const [a, b] of [pair, [upstream, client] as const]) {
      a.pipe(b);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        pairs.delete(pair);
        b.destroy();
      });
    }
  });
  const listen = (port: number) => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const dropAll = () => {
    for (const socket of sockets) socket.destroy();
  };
  await listen(0);
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: '127.0.0.1',
    port,
    async cut() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        dropAll();
      });
    },
    restore: () => listen(port),
    freeze() {
      frozen = true;
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    thaw() {
      frozen = false;
      dropAll();
    },
    async close() {
      dropAll();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
