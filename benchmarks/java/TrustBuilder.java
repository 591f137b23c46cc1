import java.io.BufferedOutputStream;
import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.FileOutputStream;
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
 * Usage: java TrustBuilder DIR OUT.jks PASSWORD
 * Every DIR/*.crt and DIR/*.pem (PEM or DER, the first certificate of each) goes in as a trusted
 * certificate entry, alias = the file name without its extension, lower-cased (what sslreconciler
 * does). No checks beyond parsing: this is the floor a Java program pays, not a like-for-like.
 */
public class TrustBuilder {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: java TrustBuilder DIR OUT.jks PASSWORD");
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
            // Whole file into memory first: CertificateFactory reads PEM a byte at a time, and an
            // unbuffered FileInputStream would make that a system call per byte (an unfair baseline).
            Certificate cert = factory.generateCertificate(new ByteArrayInputStream(Files.readAllBytes(file.toPath())));
            store.setCertificateEntry(alias, cert);
        }
        try (OutputStream out = new BufferedOutputStream(new FileOutputStream(args[1]))) {
            store.store(out, password);
        }
        System.out.println(store.size() + " entries");
    }
}
