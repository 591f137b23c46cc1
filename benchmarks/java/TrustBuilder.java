import java.io.BufferedOutputStream;
import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.Arrays;
import java.util.Locale;

/**
 * The reference for issue 15: the JKS truststore of a directory of certificates, built inside one JVM.
 *
 * Usage: java TrustBuilder DIR OUT.jks PASSWORD [--unbuffered]
 * Every DIR/*.crt and DIR/*.pem (PEM or DER, the first certificate of each) goes in as a trusted
 * certificate entry, alias = the file name without its extension, lower-cased (what sslreconciler
 * does). No checks beyond parsing: this is the floor a Java program pays, not a like-for-like.
 * Each file is read whole before parsing. --unbuffered hands CertificateFactory a bare FileInputStream
 * instead, as a naive program does: it reads PEM a byte at a time, a system call per byte (about 3x
 * slower at 10,000 files), which is kept only to show what such a reference measures.
 */
public class TrustBuilder {
    public static void main(String[] args) throws Exception {
        boolean unbuffered = args.length == 4 && args[3].equals("--unbuffered");
        if (args.length != 3 && !unbuffered) {
            System.err.println("usage: java TrustBuilder DIR OUT.jks PASSWORD [--unbuffered]");
            System.exit(2);
        }
        File dir = new File(args[0]);
        char[] password = args[2].toCharArray();
        File[] files = dir.listFiles((d, name) -> name.endsWith(".crt") || name.endsWith(".pem"));
        if (files == null) {
            System.err.println(dir + ": not a directory");
            System.exit(2);
        }
        Arrays.sort(files);
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        KeyStore store = KeyStore.getInstance("JKS");
        store.load(null, null);
        for (File file : files) {
            String name = file.getName();
            String alias = name.substring(0, name.lastIndexOf('.')).toLowerCase(Locale.ROOT);
            Certificate cert;
            if (unbuffered) {
                try (InputStream in = new FileInputStream(file)) {
                    cert = factory.generateCertificate(in);
                }
            } else {
                cert = factory.generateCertificate(new ByteArrayInputStream(Files.readAllBytes(file.toPath())));
            }
            store.setCertificateEntry(alias, cert);
        }
        try (OutputStream out = new BufferedOutputStream(new FileOutputStream(args[1]))) {
            store.store(out, password);
        }
        System.out.println(store.size() + " entries");
    }
}
