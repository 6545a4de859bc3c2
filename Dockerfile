# syntax=docker/dockerfile:1
# tixian: the API server, payout worker and webhook dispatcher in one image (`tixian serve`).
# The build stage typechecks and compiles (`npm run build`: tsc -b for the SDK and the server, and
# any workspace build such as the dashboard's); the runtime stage holds the compiled JavaScript and
# the production dependencies only, and runs no TypeScript loader.
#
#   docker build -t tixian:0.1.0 .
#   docker run -p 8080:8080 -v tixian-data:/data tixian:0.1.0
#
# Behind a TLS-terminating proxy add -e TIXIAN_TRUST_PROXY=… (README "### Behind a reverse proxy"):
# without it the console cookie is not Secure and every client has the proxy's address.
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
# --ignore-scripts: `prepare` would build before the sources are here; nothing built needs the addon.
RUN npm ci --ignore-scripts
COPY scripts/ scripts/
COPY packages/ packages/
RUN npm run typecheck && npm run build
# What the runtime needs: the manifests, the server's bin and compiled output (and any built dashboard).
RUN mkdir -p /out/packages/server /out/packages/sdk /out/packages/dashboard \
  && cp package.json package-lock.json /out/ \
  && cp -r packages/server/package.json packages/server/bin packages/server/dist /out/packages/server/ \
  && cp packages/sdk/package.json /out/packages/sdk/ \
  && cp -r packages/dashboard/. /out/packages/dashboard/ && rm -rf /out/packages/dashboard/node_modules /out/packages/dashboard/src

# --- deps: production dependencies only -----------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/server/package.json packages/server/
COPY packages/sdk/package.json packages/sdk/
COPY packages/dashboard/package.json packages/dashboard/
# --ignore-scripts skips the root `prepare` (it builds, with dev tools); the one addon is rebuilt.
RUN npm ci --omit=dev --ignore-scripts && npm rebuild better-sqlite3 && npm cache clean --force

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
