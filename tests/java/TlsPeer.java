import java.io.*;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.security.KeyStore;
import javax.net.ssl.*;

/**
 * One side of a mutual-TLS exchange using a node's ssl.keystore and authorities.jks, as sipXecs
 * services do. server KEYSTORE TRUSTSTORE PASSWORD PORTFILE | client KEYSTORE TRUSTSTORE PASSWORD PORT
 */
public class TlsPeer {
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

    public static void main(String[] args) throws Exception {
        SSLContext ctx = context(args[1], args[2], args[3].toCharArray());
        if (args[0].equals("server")) {
            SSLServerSocket server = (SSLServerSocket) ctx.getServerSocketFactory()
                .createServerSocket(0, 1, InetAddress.getLoopbackAddress());
            server.setNeedClientAuth(true);
            server.setSoTimeout(60000);
            Path portFile = Paths.get(args[4]);
            Files.write(Paths.get(args[4] + ".tmp"), String.valueOf(server.getLocalPort()).getBytes());
            Files.move(Paths.get(args[4] + ".tmp"), portFile, StandardCopyOption.ATOMIC_MOVE);
            try (SSLSocket s = (SSLSocket) server.accept()) {
                s.startHandshake();
                BufferedReader r = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
                String line = r.readLine();
                String peer = s.getSession().getPeerPrincipal().getName();
                s.getOutputStream().write(("pong " + line + "\n").getBytes(StandardCharsets.UTF_8));
                s.getOutputStream().flush();
                System.out.println("server: peer " + peer);
            }
        } else {
            try (SSLSocket s = (SSLSocket) ctx.getSocketFactory()
                    .createSocket(InetAddress.getLoopbackAddress(), Integer.parseInt(args[4]))) {
                s.setSoTimeout(60000);
                s.startHandshake();
                s.getOutputStream().write("ping\n".getBytes(StandardCharsets.UTF_8));
                s.getOutputStream().flush();
                BufferedReader r = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
                System.out.println("client: peer " + s.getSession().getPeerPrincipal().getName() + " said " + r.readLine());
            }
        }
    }
}
