# Production image for Arrears: one build, two targets (see docker-compose.yml).
#   docker build --target worker -t arrears-worker .   ->  node dist/worker/main.js  (npm run start:worker)
#   docker build --target api    -t arrears-api    .   ->  node dist/api/main.js     (npm run start:api)
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# `npm run build` compiles TypeScript into dist/, copies the SQL migrations to
# dist/db/migrations (db/client.ts applies them from there at start-up) and writes the
# workflow bundle; the image build fails here if either is missing.
RUN npm run build \
 && test -f dist/db/migrations/meta/_journal.json \
 && test -f dist/workflow-bundle.js \
 && npm prune --omit=dev

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node

FROM runtime AS worker
# The SDK's native core allocates from many threads; glibc's default of one arena per thread
# (up to 8 per core) keeps freed memory in each. Two arenas: 25 to 30 MiB less resident memory
# for the same work (BENCHMARKS.md, sleeping population). test/support/service-process.ts runs
# the built worker with the same setting.
ENV MALLOC_ARENA_MAX=2
CMD ["node", "dist/worker/main.js"]

FROM runtime AS api
EXPOSE 3000
CMD ["node", "dist/api/main.js"]
