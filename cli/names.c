/* names.c -- container names as Docker (Moby) makes them: adjective_surname.
 *
 * The lists are Moby's pkg/namesgenerator: adjectives on the left, notable
 * scientists and hackers on the right.  As in Moby, "boring_wozniak" is
 * never given (Steve Wozniak is not boring).  The original zos used the
 * same scheme with an underscore and no number.
 */
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "zos/zos.h"

static const char *const left[] = {
    "admiring",    "adoring",   "affectionate", "agitated",      "amazing",   "angry",
    "awesome",     "beautiful", "blissful",     "bold",          "boring",    "brave",
    "busy",        "charming",  "clever",       "compassionate", "competent", "condescending",
    "confident",   "cool",      "cranky",       "crazy",         "dazzling",  "determined",
    "distracted",  "dreamy",    "eager",        "ecstatic",      "elastic",   "elated",
    "elegant",     "eloquent",  "epic",         "exciting",      "fervent",   "festive",
    "flamboyant",  "focused",   "friendly",     "frosty",        "funny",     "gallant",
    "gifted",      "goofy",     "gracious",     "great",         "happy",     "hardcore",
    "heuristic",   "hopeful",   "hungry",       "infallible",    "inspiring", "intelligent",
    "interesting", "jolly",     "jovial",       "keen",          "kind",      "laughing",
    "loving",      "lucid",     "magical",      "modest",        "musing",    "mystifying",
    "naughty",     "nervous",   "nice",         "nifty",         "nostalgic", "objective",
    "optimistic",  "peaceful",  "pedantic",     "pensive",       "practical", "priceless",
    "quirky",      "quizzical", "recursing",    "relaxed",       "reverent",  "romantic",
    "sad",         "serene",    "sharp",        "silly",         "sleepy",    "stoic",
    "strange",     "stupefied", "suspicious",   "sweet",         "tender",    "thirsty",
    "trusting",    "unruffled", "upbeat",       "vibrant",       "vigilant",  "vigorous",
    "wizardly",    "wonderful", "xenodochial",  "youthful",      "zealous",   "zen",
};

static const char *const right[] = {
    "agnesi",     "albattani",     "allen",        "almeida",    "antonelli",
    "archimedes", "ardinghelli",   "aryabhata",    "austin",     "babbage",
    "banach",     "banzai",        "bardeen",      "bartik",     "bassi",
    "beaver",     "bell",          "benz",         "bhabha",     "bhaskara",
    "black",      "blackburn",     "blackwell",    "bohr",       "booth",
    "borg",       "bose",          "bouman",       "boyd",       "brahmagupta",
    "brattain",   "brown",         "buck",         "burnell",    "cannon",
    "carson",     "cartwright",    "carver",       "cerf",       "chandrasekhar",
    "chaplygin",  "chatelet",      "chatterjee",   "chaum",      "chebyshev",
    "clarke",     "cohen",         "colden",       "cori",       "cray",
    "curie",      "curran",        "darwin",       "davinci",    "dewdney",
    "dhawan",     "diffie",        "dijkstra",     "dirac",      "driscoll",
    "dubinsky",   "easley",        "edison",       "einstein",   "elbakyan",
    "elgamal",    "elion",         "ellis",        "engelbart",  "euclid",
    "euler",      "faraday",       "feistel",      "fermat",     "fermi",
    "feynman",    "franklin",      "gagarin",      "galileo",    "galois",
    "ganguly",    "gates",         "gauss",        "germain",    "goldberg",
    "goldstine",  "goldwasser",    "golick",       "goodall",    "gould",
    "greider",    "grothendieck",  "haibt",        "hamilton",   "haslett",
    "hawking",    "heisenberg",    "hellman",      "hermann",    "herschel",
    "hertz",      "heyrovsky",     "hodgkin",      "hofstadter", "hoover",
    "hopper",     "hugle",         "hypatia",      "ishizaka",   "jackson",
    "jang",       "jemison",       "jennings",     "jepsen",     "johnson",
    "joliot",     "jones",         "kalam",        "kapitsa",    "kare",
    "keldysh",    "keller",        "kepler",       "khayyam",    "khorana",
    "kilby",      "kirch",         "knuth",        "kowalevski", "lalande",
    "lamarr",     "lamport",       "leakey",       "leavitt",    "lederberg",
    "lehmann",    "lewin",         "lichterman",   "liskov",     "lovelace",
    "lumiere",    "mahavira",      "margulis",     "matsumoto",  "maxwell",
    "mayer",      "mccarthy",      "mcclintock",   "mclaren",    "mclean",
    "mcnulty",    "meitner",       "mendel",       "mendeleev",  "meninsky",
    "merkle",     "mestorf",       "mirzakhani",   "montalcini", "moore",
    "morse",      "moser",         "murdock",      "napier",     "nash",
    "neumann",    "newton",        "nightingale",  "nobel",      "noether",
    "northcutt",  "noyce",         "panini",       "pare",       "pascal",
    "pasteur",    "payne",         "perlman",      "pike",       "poincare",
    "poitras",    "proskuriakova", "ptolemy",      "raman",      "ramanujan",
    "rhodes",     "ride",          "riemann",      "ritchie",    "robinson",
    "roentgen",   "rosalind",      "rubin",        "saha",       "sammet",
    "sanderson",  "satoshi",       "shamir",       "shannon",    "shaw",
    "shirley",    "shockley",      "shtern",       "sinoussi",   "snyder",
    "solomon",    "spence",        "stonebraker",  "sutherland", "swanson",
    "swartz",     "swirles",       "taussig",      "tesla",      "tharp",
    "thompson",   "torvalds",      "tu",           "turing",     "varahamihira",
    "vaughan",    "villani",       "visvesvaraya", "volhard",    "wescoff",
    "wilbur",     "wiles",         "williams",     "williamson", "wilson",
    "wing",       "wozniak",       "wright",       "wu",         "yalow",
    "yonath",     "zhukovsky",
};

static size_t pick(size_t n)
{
    unsigned int r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = (unsigned int)time(NULL) ^ (unsigned int)getpid();
    return r % n;
}

void zos_cli_name_random(char *buf, size_t len)
{
    for (;;) {
        const char *l = left[pick(ZOS_ARRAY_LEN(left))];
        const char *r = right[pick(ZOS_ARRAY_LEN(right))];
        if (strcmp(l, "boring") == 0 && strcmp(r, "wozniak") == 0)
            continue;
        snprintf(buf, len, "%s_%s", l, r);
        return;
    }
}
