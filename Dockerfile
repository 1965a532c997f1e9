# One image with wsgate-proxy (the entrypoint), wsgate-controller and wsgate-echo-backend.
#   podman build -t wsgate .            (or docker build)
# Without a registry, build a local Debian 12 base and pass it in, as tests/delivery/test_image.sh does:
#   podman build --build-arg BASE_IMAGE=localhost/debian:bookworm -t wsgate .
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
ARG JOBS=2
WORKDIR /src
# The dependency layer first, so a source change does not reinstall the toolchain. The "build"
# list includes prometheus-cpp-dev (libprometheus-cpp-core, linked dynamically).
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
# wsgate-controller and wsgate-echo-backend are built when their sources exist; the proxy always.
# Release at -O2 (as Debian builds): GCC 12 at -O3 raises a false -Werror=restrict in std::string.
# /build and ccache live in cache mounts: rebuilds are incremental and the layer holds only /out.
RUN --mount=type=cache,target=/root/.cache/ccache --mount=type=cache,target=/build \
    cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
      -DWSGATE_BUILD_TESTS=OFF \
 && targets="wsgate-proxy" \
 && for t in wsgate-controller wsgate-echo-backend; do \
      if ninja -C /build -t targets all | grep -q "^$t: "; then targets="$targets $t"; fi; \
    done \
 && echo "building: $targets" \
 && ninja -C /build -j "$JOBS" $targets \
 && mkdir /out \
 && for t in $targets; do install -m 0755 -s "/build/bin/$t" /out/; done

FROM ${BASE_IMAGE}
# Runtime libraries only (Debian 12 names), matching what the build stage linked.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libboost-json1.81.0 libyaml-cpp0.7 libssl3 libgrpc++1.51 libgrpc29 \
      libprotobuf32 libspdlog1.10 libfmt9 libprometheus-cpp-core1.0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 wsgate \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin wsgate \
 && mkdir -p /etc/wsgate/routes
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
# 8080 HTTP/WebSocket, 8443 TLS, 9901 proxy admin, 18000 controller gRPC, 9902 controller admin.
EXPOSE 8080 8443 9901 18000 9902
LABEL org.opencontainers.image.title="wsgate" \
      org.opencontainers.image.description="WebSocket gateway: wsgate-proxy, wsgate-controller, wsgate-echo-backend"
ENTRYPOINT ["wsgate-proxy"]
# Routes from a mounted directory, admin reachable from outside the container (probes, scrapes).
CMD ["--routes", "/etc/wsgate/routes", "--admin", "0.0.0.0:9901"]
