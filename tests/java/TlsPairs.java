import java.io.*;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.*;
import javax.net.ssl.*;

/**
 * Real TLS between two sides in one JVM, for every pair asked for, as sipXecs services do it: each side has its
 * own SSLContext built from its own JKS keystore and truststore files, the server listens on 127.0.0.1, the
 * client connects over a socket, says "ping" and reads the server's "pong ping".
 *
 * Usage: TlsPairs TIMEOUT_MS, one pair per line on stdin, tab-separated:
 *   NAME SERVER_KEYSTORE SERVER_TRUSTSTORE CLIENT_KEYSTORE CLIENT_TRUSTSTORE PASSWORD mutual|server-only
 * One line per pair on stdout, tab-separated, in the order asked:
 *   NAME OK PROTOCOL SERVER_SAW CLIENT_SAW REPLY   (SERVER_SAW: the client's subject, "-" without client auth)
 *   NAME FAIL REASON                               (which side failed, and why)
 */
public class TlsPairs {
    static SSLContext context(String keystore, String truststore, char[] password) throws Exception {
        KeyStore ks = KeyStore.getInstance("JKS");
        try (InputStream in = new FileInputStream(keystore)) { ks.load(in, password); }
        KeyStore ts = KeyStore.getInstance("JKS");
        try (InputStream in = new FileInputStream(truststore)) { ts.load(in, password); }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(ks, password);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ts);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        return ctx;
    }

    static String reason(Throwable e) {
        StringBuilder out = new StringBuilder(String.valueOf(e));
        for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            if (out.indexOf(String.valueOf(c.getMessage())) < 0) out.append(" <- ").append(c);
        }
        return out.toString().replaceAll("[\\t\\r\\n]+", " ");
    }

    static String run(String[] p, int timeout) {
        String name = p[0];
        char[] password = p[5].toCharArray();
        boolean mutual = p[6].equals("mutual");
        SSLContext serverCtx, clientCtx;
        try {
            serverCtx = context(p[1], p[2], password);
        } catch (Exception e) {
            return name + "\tFAIL\tserver stores: " + reason(e);
        }
        try {
            clientCtx = context(p[3], p[4], password);
        } catch (Exception e) {
            return name + "\tFAIL\tclient stores: " + reason(e);
        }
        ExecutorService side = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "server " + name);
            t.setDaemon(true);
            return t;
        });
        try (SSLServerSocket server = (SSLServerSocket) serverCtx.getServerSocketFactory()
                .createServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            server.setNeedClientAuth(mutual);
            server.setSoTimeout(timeout);
            Future<String> served = side.submit(() -> {
                try (SSLSocket s = (SSLSocket) server.accept()) {
                    s.setSoTimeout(timeout);
                    s.startHandshake();
                    BufferedReader r = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
                    String line = r.readLine();
                    String peer = mutual ? s.getSession().getPeerPrincipal().getName() : "-";
                    s.getOutputStream().write(("pong " + line + "\n").getBytes(StandardCharsets.UTF_8));
                    s.getOutputStream().flush();
                    return peer;
                }
            });
            String protocol = null, clientSaw = null, reply = null;
            Throwable clientError = null;
            try (SSLSocket s = (SSLSocket) clientCtx.getSocketFactory()
                    .createSocket(InetAddress.getLoopbackAddress(), server.getLocalPort())) {
                s.setSoTimeout(timeout);
                s.startHandshake();
                s.getOutputStream().write("ping\n".getBytes(StandardCharsets.UTF_8));
                s.getOutputStream().flush();
                BufferedReader r = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
                reply = r.readLine();
                clientSaw = s.getSession().getPeerPrincipal().getName();
                protocol = s.getSession().getProtocol();
            } catch (Exception e) {
                clientError = e;
                server.close(); // a server still waiting in accept() gives up now
            }
            String serverSaw = null;
            Throwable serverError = null;
            try {
                serverSaw = served.get(timeout, TimeUnit.MILLISECONDS);
            } catch (ExecutionException e) {
                serverError = e.getCause();
            } catch (Exception e) {
                serverError = e;
            }
            if (clientError != null || serverError != null) {
                List<String> why = new ArrayList<>();
                if (clientError != null) why.add("client: " + reason(clientError));
                if (serverError != null) why.add("server: " + reason(serverError));
                return name + "\tFAIL\t" + String.join("; ", why);
            }
            return String.join("\t", name, "OK", protocol, serverSaw, clientSaw, String.valueOf(reply));
        } catch (Exception e) {
            return name + "\tFAIL\tserver socket: " + reason(e);
        } finally {
            side.shutdownNow();
        }
    }

    public static void main(String[] args) throws Exception {
        int timeout = Integer.parseInt(args[0]);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        List<String[]> pairs = new ArrayList<>();
        for (String line; (line = in.readLine()) != null; ) {
            if (!line.isEmpty()) pairs.add(line.split("\t", -1));
        }
        for (String[] p : pairs) {
            System.out.println(p.length == 7 ? run(p, timeout) : p[0] + "\tFAIL\tbad request line: " + p.length + " fields");
            System.out.flush();
        }
    }
}
