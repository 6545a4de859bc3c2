# syntax=docker/dockerfile:1
# tixian: the API server, payout worker and webhook dispatcher in one image (`tixian serve`).
# It runs its TypeScript through tsx (a production dependency): there is no compile step, so the
# build stage typechecks and runs any workspace build script (the dashboard's, once it has one).
#
#   docker build -t tixian:0.1.0 .
#   docker run -p 8080:8080 -v tixian-data:/data tixian:0.1.0
#
# Not built in this repository's CI (its machines have no container engine); see README "## Deploy".

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: every dependency, typecheck, workspace builds ---------------------------------------
FROM ${NODE_IMAGE} AS build
# better-sqlite3 compiles from source when no prebuilt binary matches the platform.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.base.json ./
COPY packages/server/package.json packages/server/
COPY packages/sdk/package.json packages/sdk/
COPY packages/dashboard/package.json packages/dashboard/
RUN npm ci
COPY packages/ packages/
RUN npm run typecheck && npm run build --workspaces --if-present
# What the runtime needs of the sources: no tests, benchmarks or nested node_modules.
RUN mkdir /out && cp -r package.json package-lock.json packages /out/ \
  && rm -rf /out/packages/*/node_modules /out/packages/*/test /out/packages/server/bench

# --- deps: production dependencies only -----------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/server/package.json packages/server/
COPY packages/sdk/package.json packages/sdk/
COPY packages/dashboard/package.json packages/dashboard/
RUN npm ci --omit=dev && npm cache clean --force

# --- runtime -----------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    TIXIAN_HOST=0.0.0.0 \
    TIXIAN_PORT=8080 \
    TIXIAN_DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/ /app/
COPY --from=build /out/ /app/
# The image's `node` user (uid 1000) owns only the data volume: the code stays read-only to it.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.TIXIAN_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "packages/server/bin/tixian.mjs"]
CMD ["serve"]
