import java.io.IOException;

import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;

import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.SslConnectionFactory;
import org.eclipse.jetty.server.handler.AbstractHandler;
import org.eclipse.jetty.util.Jetty;
import org.eclipse.jetty.util.ssl.KeyStoreScanner;
import org.eclipse.jetty.util.ssl.SslContextFactory;

/**
 * Jetty 9.4 (the jars of Debian's libjetty9-java) serving HTTPS on 127.0.0.1:port from a keystore,
 * requiring a client certificate the truststore accepts, with a KeyStoreScanner watching the keystore
 * (scan interval 1 s): a replaced keystore is reloaded with no hook.
 *
 * Usage: JettyTls port keystore storetype truststore password
 */
public final class JettyTls {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        String keystore = args[1], storetype = args[2], truststore = args[3], password = args[4];

        SslContextFactory.Server ssl = new SslContextFactory.Server();
        ssl.setKeyStorePath(keystore);
        ssl.setKeyStoreType(storetype);
        ssl.setKeyStorePassword(password);
        ssl.setTrustStorePath(truststore);
        ssl.setTrustStoreType("JKS");
        ssl.setTrustStorePassword(password);
        ssl.setNeedClientAuth(true);

        Server server = new Server();
        ServerConnector https = new ServerConnector(server, new SslConnectionFactory(ssl, "http/1.1"),
                new HttpConnectionFactory());
        https.setHost("127.0.0.1");
        https.setPort(port);
        server.addConnector(https);
        KeyStoreScanner scanner = new KeyStoreScanner(ssl);
        scanner.setScanInterval(1);
        server.addBean(scanner);
        server.setHandler(new AbstractHandler() {
            @Override
            public void handle(String target, Request base, HttpServletRequest req, HttpServletResponse resp)
                    throws IOException {
                resp.setStatus(200);
                resp.setContentType("text/plain");
                resp.getWriter().write("ok\n");
                base.setHandled(true);
            }
        });
        server.start();
        System.out.println("STARTED " + Jetty.VERSION);
        System.out.flush();
        server.join();
    }
}
