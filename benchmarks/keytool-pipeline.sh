#!/usr/bin/env bash
# The classic way (gen-ssl-keys.sh style) to build the same five artifacts from a seed-layout ssl dir:
# openssl pkcs12 -export, keytool -importkeystore (one JVM each), keytool -importcert per trusted cert,
# openssl rehash for the hash links. Usage: keytool-pipeline.sh SSL_DIR HOSTNAME [PASSWORD]
set -euo pipefail
dir=$1 host=$2 pw=${3:-changeit}
cd "$dir"
rm -f ssl.p12 ssl-web.p12 ssl.keystore ssl-web.keystore authorities.jks
for pair in ssl ssl-web; do
  key=$pair.key crt=$pair.crt
  [ -f "$key" ] || { key=ssl.key; crt=ssl.crt; }
  openssl pkcs12 -export -inkey "$key" -in "$crt" -name "$pair" -passout "pass:$pw" -out "$pair.p12"
  keytool -importkeystore -noprompt -srckeystore "$pair.p12" -srcstoretype PKCS12 -srcstorepass "$pw" \
    -destkeystore "$pair.keystore" -deststoretype JKS -deststorepass "$pw" -destkeypass "$pw" >/dev/null 2>&1
done
for crt in authorities/*.crt; do
  alias=$(basename "$crt" .crt)
  keytool -importcert -noprompt -alias "$alias" -file "$crt" -keystore authorities.jks -storetype JKS \
    -storepass "$pw" >/dev/null 2>&1
done
keytool -importcert -noprompt -alias "$host" -file ssl.crt -keystore authorities.jks -storetype JKS \
  -storepass "$pw" >/dev/null 2>&1
openssl rehash authorities >/dev/null 2>&1 || true
