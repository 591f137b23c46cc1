import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

import org.apache.catalina.Context;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.startup.Tomcat;
import org.apache.catalina.util.ServerInfo;
import org.apache.coyote.http11.AbstractHttp11Protocol;
import org.apache.tomcat.util.net.SSLHostConfig;
import org.apache.tomcat.util.net.SSLHostConfigCertificate;

/**
 * Embedded Tomcat (the jars of Debian's libtomcat10-java) serving HTTPS on 127.0.0.1:port from a keystore,
 * requiring a client certificate the truststore accepts (the NIO connector, one SSLHostConfig, as a
 * server.xml Connector with SSLHostConfig/Certificate would). Every line written to the control FIFO
 * calls the connector's reloadSslHostConfigs(), what the Manager's sslReload does; each reload is
 * reported on stdout ("RELOADED n" or "RELOAD-FAILED n reason").
 *
 * Usage: TomcatTls workdir port keystore storetype truststore password control-fifo
 */
public final class TomcatTls {
    public static void main(String[] args) throws Exception {
        Path work = Paths.get(args[0]);
        int port = Integer.parseInt(args[1]);
        String keystore = args[2], storetype = args[3], truststore = args[4], password = args[5];
        Path control = Paths.get(args[6]);

        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(work.toString());
        Connector connector = new Connector("org.apache.coyote.http11.Http11NioProtocol");
        connector.setPort(port);
        connector.setProperty("address", "127.0.0.1");
        connector.setSecure(true);
        connector.setScheme("https");
        connector.setProperty("SSLEnabled", "true");
        SSLHostConfig ssl = new SSLHostConfig();
        ssl.setCertificateVerification("required");
        ssl.setTruststoreFile(truststore);
        ssl.setTruststorePassword(password);
        ssl.setTruststoreType("JKS");
        SSLHostConfigCertificate cert = new SSLHostConfigCertificate(ssl, SSLHostConfigCertificate.Type.UNDEFINED);
        cert.setCertificateKeystoreFile(keystore);
        cert.setCertificateKeystorePassword(password);
        cert.setCertificateKeystoreType(storetype);
        ssl.addCertificate(cert);
        connector.addSslHostConfig(ssl);
        tomcat.setConnector(connector);

        Context ctx = tomcat.addContext("", work.toString());
        Tomcat.addServlet(ctx, "ok", new HttpServlet() {
            @Override
            protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                resp.setContentType("text/plain");
                resp.getWriter().write("ok\n");
            }
        });
        ctx.addServletMappingDecoded("/", "ok");
        tomcat.start();
        System.out.println("STARTED " + ServerInfo.getServerNumber());
        System.out.flush();

        AbstractHttp11Protocol<?> protocol = (AbstractHttp11Protocol<?>) connector.getProtocolHandler();
        int n = 0;
        while (true) {  // a writer opens the FIFO, writes lines, closes it: then open it again
            try (BufferedReader in = Files.newBufferedReader(control, StandardCharsets.UTF_8)) {
                for (String line = in.readLine(); line != null; line = in.readLine()) {
                    if (line.isBlank()) continue;
                    n++;
                    try {
                        protocol.reloadSslHostConfigs();
                        System.out.println("RELOADED " + n);
                    } catch (RuntimeException e) {
                        System.out.println("RELOAD-FAILED " + n + " " + e);
                    }
                    System.out.flush();
                }
            }
        }
    }
}
