# One image for every process of the cluster: the gateway (default command), the producers and
# the upload worker; docker-compose.yml gives each its command, the same as `npm run cluster`.
#
# The build stage compiles the workspaces (`npm run build`: tsc -b, see docs/development.md, "Build");
# the runtime stage holds the production install and the compiled dist/ folders only: no
# TypeScript source, no typescript, no ts-node (devDependencies, omitted). Nothing else from
# devDependencies, and not the tooling workspaces (packages/testing: testcontainers…; packages/local),
# enters the image.

# The official image by default; docker-compose.yml passes NODE_IMAGE (npm run images:local
# builds a local one). No `# syntax=` line: BuildKit would pull that frontend from a registry.
ARG NODE_IMAGE=node:24-bookworm-slim

# Every workspace's package.json and the lock, alone: the install layer below is rebuilt only
# when one of them changes.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN mkdir -p /out \
 && cp package.json package-lock.json /out/ \
 && for f in packages/*/package.json apps/*/package.json; do \
      mkdir -p "/out/$(dirname "$f")" && cp "$f" "/out/$f"; \
    done \
 && rm -rf /out/packages/testing /out/packages/local

# The compiler's stage: the full install (typescript, @types), then `npm run build`; /dist gets
# each workspace's dist/ (without tsc's .tsbuildinfo).
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY --from=manifests /out/ ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.base.json tsconfig.build.json ./
COPY scripts/post-build.js ./scripts/
COPY packages ./packages
COPY apps ./apps
RUN npm run build \
 && for d in packages/*/dist apps/*/dist; do \
      mkdir -p "/dist/$d" && cp -r "$d/." "/dist/$d/"; \
    done \
 && find /dist -name '*.tsbuildinfo' -delete

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY --from=manifests /out/ ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
# tini as PID 1: signals (SIGTERM: drain) reach Node, zombies are reaped.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    UPLOAD_DIR=/data/uploads
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=manifests /out/ ./
COPY --from=build /dist/ ./
# The demo pages (served by every gateway from apps/web/public).
COPY apps/web ./apps/web
# Files stay root's and read-only to the app; it writes only received uploads (a volume in
# compose, shared by the gateways and the upload worker).
RUN mkdir -p /data/uploads && chown node:node /data/uploads
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--max-semi-space-size=8", "apps/gateway/dist/main.js"]
