# cdc-sql in a small image: built with the Rust toolchain, run on debian-slim.
FROM rust:1.94-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin cdc-sql \
 && cp target/release/cdc-sql /cdc-sql

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/cdc-sql --create-home cdc-sql
COPY --from=builder /cdc-sql /usr/local/bin/cdc-sql
USER cdc-sql
# Checkpoints go to <XDG_STATE_HOME>/cdc-sql/checkpoints/<job>: mount a volume here.
ENV XDG_STATE_HOME=/var/lib/cdc-sql \
    CDC_SQL_HTTP_ADDR=0.0.0.0:8081
VOLUME /var/lib/cdc-sql
EXPOSE 8081
ENTRYPOINT ["cdc-sql"]
