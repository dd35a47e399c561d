# pika-relay container: a release build on Debian, run as `pika-relay run ...` by an unprivileged
# user (65534). Needs the rust and debian images from a registry; without one,
# scripts/build-images makes a FROM-scratch image from the binary built on the host.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/pika-relay /usr/local/bin/pika-relay

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/pika-relay /usr/local/bin/pika-relay
COPY pika-relay.example.toml /etc/pika-relay/pika-relay.example.toml
RUN mkdir -p /var/lib/pika-relay && chown 65534:65534 /var/lib/pika-relay
USER 65534:65534
VOLUME /var/lib/pika-relay
# R, R+1000 (old master pushes binlog), R+2000 (new slaves), R+3000 (old master's rsync), metrics
EXPOSE 9301 10301 11301 12301 9401
ENTRYPOINT ["pika-relay"]
CMD ["--help"]
