// The baseline of the webhook benchmark: a bare Fastify POST that parses the same JSON body and
// answers. Run in the benchmark's process (dev shape) or, as `node --import tsx` of this file,
// in a process of its own (production shape), like the API it is compared with.
import Fastify from 'fastify';

export async function startBareServer(): Promise<{ url: string; close(): Promise<void> }> {
  const bare = Fastify({ logger: false, bodyLimit: 256 * 1024 });
  bare.post('/bare', async (request) => ({ ok: typeof request.body === 'object' }));
  const url = await bare.listen({ host: '127.0.0.1', port: 0 });
  return { url, close: () => bare.close() };
}

if (require.main === module) {
  startBareServer()
    .then(({ url }) => console.log(`bare server listening on ${url}`))
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}
