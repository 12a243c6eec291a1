# crystalwatch image: one image, every stage (`crystalwatch run` picks stages from CRYSTALWATCH_STAGES).
# GPU: build with a CUDA-capable Node base, e.g.
#   docker build --build-arg NODE_IMAGE=<your node 20 image on nvidia/cuda:12.x-cudnn-runtime> -t crystalwatch:gpu .
# onnxruntime-node then finds the CUDA execution provider; without it classify falls back to the CPU.
# The image must have coreutils' env (Debian, Ubuntu; not Alpine's BusyBox): bin/crystalwatch.js starts
# node through `env -S` with its heap flag.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Sources before `npm ci`: its `prepare` script compiles them (tsc is a dev dependency).
COPY . .
RUN npm ci --no-audit --no-fund \
 && npx tsc -p tsconfig.build.json \
 && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    CRYSTALWATCH_WEB_HOST=0.0.0.0 \
    CRYSTALWATCH_LOG_PRETTY=0
WORKDIR /app
COPY --from=build --chown=node:node /app/package.json /app/package-lock.json ./
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --from=build --chown=node:node /app/bin ./bin
# The live page is served from src/web/static (tsc does not copy non-TS files to dist/).
COPY --from=build --chown=node:node /app/src/web/static ./src/web/static
COPY --from=build --chown=node:node /app/models ./models
COPY --from=build --chown=node:node /app/dashboards ./dashboards
RUN ln -s /app/bin/crystalwatch.js /usr/local/bin/crystalwatch && mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.CRYSTALWATCH_WEB_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["crystalwatch"]
CMD ["run"]
