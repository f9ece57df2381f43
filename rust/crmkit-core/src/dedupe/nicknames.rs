//! Common English given-name nickname groups (William/Bill/Will/Billy, ...).
//!
//! Two first names are "nickname-equivalent" when they share a group. A name
//! may belong to several groups (`al` is short for Albert, Alfred, Alan, ...).

use std::collections::HashMap;
use std::sync::OnceLock;

/// The nickname groups: the formal name first, then its usual short forms.
pub static GROUPS: &[&[&str]] = &[
    &["abigail", "abby", "abbie", "gail"],
    &["abraham", "abe", "bram"],
    &["adam", "ad"],
    &["albert", "al", "bert", "bertie"],
    &["alexander", "alex", "al", "alec", "sandy", "xander", "lex"],
    &[
        "alexandra",
        "alex",
        "alexa",
        "sandra",
        "sandy",
        "lexi",
        "alexis",
    ],
    &["alfred", "al", "alf", "alfie", "fred"],
    &["alan", "al", "allen", "allan"],
    &["amanda", "mandy", "manda", "amy"],
    &["andrew", "andy", "drew", "andre"],
    &["angela", "angie", "angel"],
    &["anne", "ann", "annie", "anna", "nan", "nancy", "hannah"],
    &["anthony", "tony", "ant", "antony"],
    &["arthur", "art", "artie"],
    &["barbara", "barb", "barbie", "babs", "barbra"],
    &["benjamin", "ben", "benny", "benji"],
    &["bernard", "bernie", "bernie"],
    &["beverly", "bev"],
    &["bradley", "brad"],
    &[
        "catherine",
        "cathy",
        "cat",
        "kate",
        "katie",
        "kathy",
        "katherine",
        "kathryn",
        "kay",
        "kitty",
        "kit",
        "trina",
    ],
    &[
        "charles", "charlie", "chuck", "chas", "chaz", "chip", "carl",
    ],
    &["charlotte", "charlie", "lottie", "lotte", "char"],
    &["christian", "chris", "kit"],
    &[
        "christina",
        "chris",
        "christy",
        "tina",
        "chrissy",
        "kristina",
        "christine",
        "kristen",
        "kirsten",
    ],
    &["christopher", "chris", "kit", "topher", "cris"],
    &["clifford", "cliff"],
    &["cynthia", "cindy", "cyndi"],
    &["daniel", "dan", "danny"],
    &["danielle", "dani", "ellie"],
    &["david", "dave", "davy", "davey"],
    &["deborah", "debbie", "deb", "debra", "debby"],
    &["donald", "don", "donny"],
    &["dorothy", "dot", "dottie", "dolly", "dora"],
    &["douglas", "doug"],
    &["edward", "ed", "eddie", "ted", "teddy", "ned", "eddy"],
    &["edwin", "ed", "eddie", "win"],
    &["eleanor", "ellie", "nora", "elle", "ella", "elly", "nell"],
    &[
        "elizabeth",
        "liz",
        "beth",
        "betty",
        "betsy",
        "eliza",
        "lisa",
        "libby",
        "lizzie",
        "bess",
        "elsie",
        "liza",
        "elisabeth",
        "ellie",
    ],
    &["emily", "em", "emmy", "millie"],
    &["eugene", "gene"],
    &["florence", "flo", "flossie"],
    &["frances", "fran", "frankie", "fanny"],
    &["francis", "frank", "fran", "frankie"],
    &["franklin", "frank"],
    &["frederick", "fred", "freddie", "freddy", "rick", "fritz"],
    &["gabriel", "gabe"],
    &["gabrielle", "gabby", "gabi"],
    &["gerald", "gerry", "jerry"],
    &["gregory", "greg"],
    &["harold", "harry", "hal"],
    &["henry", "hank", "harry", "hal", "hennie"],
    &["herbert", "herb", "bert"],
    &["howard", "howie"],
    &["isaac", "ike", "zac"],
    &["isabella", "izzy", "bella", "isabel", "isabelle", "belle"],
    &["jacob", "jake", "jack", "coby"],
    &["james", "jim", "jimmy", "jamie", "jem"],
    &["jane", "janie", "jenny", "jean", "jan"],
    &["janet", "jan", "jen"],
    &["jeffrey", "jeff", "geoff", "geoffrey"],
    &["jennifer", "jen", "jenny", "jenn", "jennie"],
    &["jessica", "jess", "jessie", "jessi"],
    &["john", "jack", "johnny", "jon", "jonny"],
    &["jonathan", "jon", "jonny", "nathan", "john"],
    &["joseph", "joe", "joey", "jo"],
    &["josephine", "jo", "josie", "jojo"],
    &["joshua", "josh"],
    &["judith", "judy", "jude"],
    &["kenneth", "ken", "kenny"],
    &["lawrence", "larry", "laurie", "lawrie", "laurence"],
    &["leonard", "leo", "len", "lenny"],
    &["louis", "lou", "louie"],
    &["louise", "lou", "lulu"],
    &[
        "margaret", "maggie", "meg", "peggy", "marge", "madge", "greta", "daisy", "peg", "margie",
        "meagan", "megan", "rita", "molly",
    ],
    &["martha", "marty", "mattie", "patsy"],
    &["martin", "marty"],
    &[
        "mary", "molly", "polly", "mae", "mamie", "maria", "marie", "mimi",
    ],
    &["matthew", "matt", "matty"],
    &["michael", "mike", "mikey", "mick", "mickey", "mitch"],
    &["michelle", "shelly", "chelle", "micki"],
    &["nathaniel", "nate", "nat", "nathan", "natty"],
    &["natalie", "nat", "tally", "natty"],
    &["nicholas", "nick", "nicky", "nico", "colin"],
    &["nicole", "nikki", "nicky", "cole"],
    &["oliver", "ollie", "olly"],
    &["olivia", "liv", "livvy", "ollie"],
    &["pamela", "pam"],
    &["patricia", "pat", "patty", "tricia", "trish", "patsy"],
    &["patrick", "pat", "paddy", "rick"],
    &["peter", "pete"],
    &["philip", "phil", "pip", "phillip"],
    &["rebecca", "becky", "becca", "reba"],
    &["richard", "rich", "rick", "ricky", "dick", "richie", "rico"],
    &["robert", "rob", "bob", "bobby", "robbie", "bert", "robin"],
    &["ronald", "ron", "ronnie"],
    &["samantha", "sam", "sammy"],
    &["samuel", "sam", "sammy"],
    &["sarah", "sara", "sally", "sadie"],
    &["stephanie", "steph", "stephie", "stevie"],
    &["stephen", "steve", "stevie", "steven"],
    &["susan", "sue", "susie", "suzy", "suzanne", "susanna"],
    &["theodore", "ted", "teddy", "theo"],
    &["thomas", "tom", "tommy", "thom"],
    &["timothy", "tim", "timmy"],
    &["victoria", "vicky", "tori", "vic", "vikki"],
    &["vincent", "vince", "vinny"],
    &["virginia", "ginny", "ginger"],
    &["walter", "walt", "wally"],
    &[
        "william", "will", "bill", "billy", "willy", "willie", "liam",
    ],
    &["zachary", "zach", "zack", "zac"],
];

fn table() -> &'static HashMap<&'static str, Vec<u16>> {
    static TABLE: OnceLock<HashMap<&'static str, Vec<u16>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map: HashMap<&'static str, Vec<u16>> = HashMap::new();
        for (g, names) in GROUPS.iter().enumerate() {
            for name in names.iter() {
                let groups = map.entry(name).or_default();
                if !groups.contains(&(g as u16)) {
                    groups.push(g as u16);
                }
            }
        }
        map
    })
}

/// The nickname groups a (lowercase) first name belongs to; empty if none.
pub fn groups_of(name: &str) -> &'static [u16] {
    table().get(name).map(|v| v.as_slice()).unwrap_or(&[])
}

/// Whether two sorted group lists share a group.
pub fn share_group(a: &[u16], b: &[u16]) -> bool {
    a.iter().any(|g| b.contains(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn william_and_bill_are_equivalent() {
        assert!(share_group(groups_of("william"), groups_of("bill")));
        assert!(share_group(groups_of("liz"), groups_of("beth")));
        assert!(!share_group(groups_of("william"), groups_of("robert")));
        assert!(groups_of("zorblax").is_empty());
    }

    #[test]
    fn table_has_about_a_hundred_groups() {
        assert!(GROUPS.len() >= 100);
    }
}
