import java.io.FileInputStream;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.util.Collections;

/** Opens a keystore the way a Java service does and lists its entries: alias, kind, chain length. */
public class StoreProbe {
    public static void main(String[] args) throws Exception {
        String type = args[0], file = args[1];
        char[] password = args[2].toCharArray();
        KeyStore store = KeyStore.getInstance(type);
        try (FileInputStream in = new FileInputStream(file)) {
            store.load(in, password);
        } catch (Exception e) {
            System.out.println("LOAD-FAILED " + e);
            System.exit(3);
        }
        for (String alias : Collections.list(store.aliases())) {
            if (store.isKeyEntry(alias)) {
                store.getKey(alias, password); // proves the key password = store password
                Certificate[] chain = store.getCertificateChain(alias);
                System.out.println(alias + "\tkey\t" + chain.length);
            } else {
                System.out.println(alias + "\ttrusted\t1");
            }
        }
    }
}
