import java.io.FileInputStream;
import java.io.InputStream;
import java.security.KeyStore;
import java.security.cert.CertPath;
import java.security.cert.CertPathBuilder;
import java.security.cert.CertPathValidator;
import java.security.cert.CertStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.CollectionCertStoreParameters;
import java.security.cert.PKIXBuilderParameters;
import java.security.cert.PKIXCertPathBuilderResult;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509CertSelector;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Java's own PKIX verdict on chain files, against the CA certificates of a JKS truststore.
 *
 * Usage: PathCheck STORE PASSWORD FILE...  Each FILE holds a leaf first, then the certificates that came
 * with it. A path is built (CertPathBuilder, PKIX) from those, then checked by CertPathValidator (PKIX),
 * revocation off. Prints "FILE OK" or "FILE FAIL reason" per file. Anchors: the store's trusted entries
 * that are CAs (basicConstraints CA, or a self-signed v1 certificate), as the reconcile's anchors are.
 */
public class PathCheck {
    public static void main(String[] args) throws Exception {
        KeyStore store = KeyStore.getInstance("JKS");
        try (InputStream in = new FileInputStream(args[0])) {
            store.load(in, args[1].toCharArray());
        }
        Set<TrustAnchor> anchors = new HashSet<>();
        for (String alias : Collections.list(store.aliases())) {
            if (!store.isCertificateEntry(alias)) {
                continue;
            }
            X509Certificate c = (X509Certificate) store.getCertificate(alias);
            boolean selfIssued = c.getSubjectX500Principal().equals(c.getIssuerX500Principal());
            if (c.getBasicConstraints() >= 0 || (c.getVersion() == 1 && selfIssued)) {
                anchors.add(new TrustAnchor(c, null));
            }
        }
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        for (int i = 2; i < args.length; i++) {
            List<X509Certificate> chain = new ArrayList<>();
            try (InputStream in = new FileInputStream(args[i])) {
                for (Certificate c : factory.generateCertificates(in)) {
                    chain.add((X509Certificate) c);
                }
            }
            try {
                X509CertSelector target = new X509CertSelector();
                target.setCertificate(chain.get(0));
                PKIXBuilderParameters build = new PKIXBuilderParameters(anchors, target);
                build.setRevocationEnabled(false);
                build.addCertStore(CertStore.getInstance("Collection", new CollectionCertStoreParameters(chain)));
                CertPath path = ((PKIXCertPathBuilderResult) CertPathBuilder.getInstance("PKIX").build(build))
                    .getCertPath();
                PKIXParameters check = new PKIXParameters(anchors);
                check.setRevocationEnabled(false);
                CertPathValidator.getInstance("PKIX").validate(path, check);
                System.out.println(args[i] + " OK");
            } catch (Exception e) {
                System.out.println(args[i] + " FAIL " + e);
            }
        }
    }
}
