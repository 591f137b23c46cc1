import java.io.FileInputStream;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.util.Collections;

/**
 * Opens keystores the way a Java service does and lists their entries: alias, kind, chain length.
 *
 * Usage: StoreProbe TYPE FILE PASSWORD [TYPE FILE PASSWORD ...]: every store in one JVM. Each line of the answer
 * starts with the store's index (0, 1, ...) and a tab; a store's lines end with "END rc": 0 opened and listed,
 * 3 "LOAD-FAILED reason" (the store did not open), 1 "ERROR reason" (it opened, an entry did not).
 */
public class StoreProbe {
    static int probe(String prefix, String type, String file, char[] password) {
        KeyStore store;
        try (FileInputStream in = new FileInputStream(file)) {
            store = KeyStore.getInstance(type);
            store.load(in, password);
        } catch (Exception e) {
            System.out.println(prefix + "LOAD-FAILED " + e);
            return 3;
        }
        try {
            for (String alias : Collections.list(store.aliases())) {
                if (store.isKeyEntry(alias)) {
                    store.getKey(alias, password); // proves the key password = store password
                    Certificate[] chain = store.getCertificateChain(alias);
                    System.out.println(prefix + alias + "\tkey\t" + chain.length);
                } else {
                    System.out.println(prefix + alias + "\ttrusted\t1");
                }
            }
        } catch (Exception e) {
            System.out.println(prefix + "ERROR " + e);
            return 1;
        }
        return 0;
    }

    public static void main(String[] args) {
        for (int i = 0; i + 2 < args.length; i += 3) {
            String prefix = (i / 3) + "\t";
            int rc = probe(prefix, args[i], args[i + 1], args[i + 2].toCharArray());
            System.out.println(prefix + "END " + rc);
        }
    }
}
