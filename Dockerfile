# pika-relay container: a release build on Debian, run as `pika-relay run ...`.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/pika-relay /usr/local/bin/pika-relay

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/pika-relay /usr/local/bin/pika-relay
COPY pika-relay.example.toml /etc/pika-relay/pika-relay.example.toml
VOLUME /var/lib/pika-relay
# R, R+1000 (old master pushes binlog), R+2000 (new slaves), R+3000 (old master's rsync), metrics
EXPOSE 9301 10301 11301 12301 9401
ENTRYPOINT ["pika-relay"]
CMD ["--help"]
