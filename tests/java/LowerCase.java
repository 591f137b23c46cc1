import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

/**
 * What a JKS does to an alias: String.toLowerCase(Locale.ENGLISH) (sun.security.provider.JavaKeyStore.JKS).
 *
 * Each line of stdin is one string as UTF-16 code units in hex, space-separated ("3a3 391 3a3 2d 63 61"); each
 * line of the answer is its lower-cased form the same way (an empty string is an empty line).
 */
public class LowerCase {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        StringBuilder out = new StringBuilder();
        for (String line; (line = in.readLine()) != null; ) {
            StringBuilder s = new StringBuilder();
            for (String unit : line.trim().split(" ")) {
                if (!unit.isEmpty()) {
                    s.append((char) Integer.parseInt(unit, 16));
                }
            }
            String lower = s.toString().toLowerCase(Locale.ENGLISH);
            for (int i = 0; i < lower.length(); i++) {
                out.append(i == 0 ? "" : " ").append(Integer.toHexString(lower.charAt(i)));
            }
            out.append('\n');
        }
        System.out.print(out);
    }
}
