"""Raw word lists of the synthetic language: data only, parsed by `lexicon.py`.

Within each list, words come roughly from most to least common: the sampler gives earlier
words higher (Zipfian) weight, so the order shapes the frequency profile.

Noun entries: ``singular`` or ``singular:plural`` (irregular plural), ``singular:`` for
nouns that have no plural in use (mass nouns). Verb entries: ``base`` or
``base/past/participle``; a trailing ``+`` doubles the final consonant before -ed/-ing
(``stop+`` -> stopped, stopping). No word form may belong to two open classes (a noun
that is also a verb, say): `lexicon.py` checks this, so the shape of a sentence (the
sequence of word classes) is unambiguous, which the minimal-pair tests rely on.
"""

# --- nouns, by semantic class -------------------------------------------------------

ANIMAL_NOUNS = {
    "mammal": """dog cat horse cow goat sheep:sheep pig fox wolf:wolves deer:deer rabbit
        mouse:mice squirrel badger otter beaver hedgehog mole donkey camel lion tiger elephant
        giraffe zebra monkey bear rat hare lynx boar lamb pony hamster raccoon whale dolphin llama
        ox:oxen yak moose:moose bison:bison weasel ferret leopard panda gorilla kangaroo koala
        walrus mule bat mink stoat vole shrew lemur sloth hippo rhino cheetah jaguar hyena
        antelope gazelle chipmunk porcupine armadillo seal kitten puppy foal calf:calves
        piglet bull stallion mare""",
    "bird": """owl hen duck goose:geese crow sparrow robin eagle hawk swan pigeon parrot
        chicken gull heron raven finch wren magpie stork falcon peacock turkey penguin
        ostrich woodpecker kingfisher lark thrush starling blackbird nightingale dove cuckoo
        canary goldfinch pelican flamingo vulture buzzard kestrel puffin quail pheasant
        partridge swallow jay toucan hummingbird""",
    "fish": """fish:fish trout:trout salmon:salmon eel herring:herring shark minnow
        catfish:catfish carp:carp pike:pike sardine anchovy mackerel:mackerel
        goldfish:goldfish stickleback""",
    "reptile": "snake lizard turtle tortoise crocodile gecko iguana chameleon viper adder",
    "amphibian": "frog toad newt salamander",
    "insect": """bee ant beetle butterfly moth cricket grasshopper wasp caterpillar dragonfly
        firefly ladybird flea gnat hornet termite cockroach locust aphid earwig""",
    # Small animals that are not insects; their entries call them animals.
    "invertebrate": "spider snail worm slug centipede",
}

# Person nouns with grammatical gender: f, m, or p (either; reflexive chosen per use).
PERSON_NOUNS = {
    "f": """girl woman:women mother sister queen aunt grandmother daughter princess wife:wives
        nun niece granddaughter lady:ladies duchess maid bride widow heroine""",
    "m": """boy man:men father brother king uncle grandfather son prince husband monk
        fisherman:fishermen nephew grandson gentleman:gentlemen duke lord widower""",
    "p": """child:children farmer teacher baker friend student neighbor doctor carpenter
        blacksmith hunter shepherd miller weaver tailor potter painter poet singer dancer
        nurse soldier sailor captain merchant knight gardener builder chef librarian clerk
        mayor priest traveler stranger visitor guest musician writer scientist inventor
        messenger miner mason shopkeeper innkeeper woodcutter beekeeper butcher banker
        person:people cousin baby:babies toddler pupil orphan villager apprentice elder twin
        sculptor jeweler cobbler brewer herbalist ranger judge surgeon dentist pilot engineer
        architect plumber barber grocer florist goldsmith locksmith watchmaker cooper thatcher
        tanner dyer acrobat juggler magician storyteller historian astronomer mapmaker cowherd
        goatherd""",
}

# Occupations that a person of the world can have (a subset of PERSON_NOUNS["p"]).
OCCUPATIONS = """farmer teacher baker doctor carpenter blacksmith hunter shepherd miller weaver
    tailor potter painter poet singer dancer nurse soldier sailor merchant gardener builder
    chef librarian clerk priest musician writer scientist inventor messenger miner mason
    shopkeeper innkeeper woodcutter beekeeper butcher banker sculptor jeweler cobbler brewer
    herbalist ranger judge surgeon dentist pilot engineer architect plumber barber grocer
    florist goldsmith locksmith watchmaker cooper thatcher tanner dyer acrobat juggler
    magician storyteller historian astronomer mapmaker cowherd goatherd"""

TOOL_NOUNS = """hammer knife:knives axe shovel bucket rope needle ladder broom brush spade rake
    chisel drill lantern net hook spoon ladle kettle sickle scythe hoe trowel pitchfork mallet
    wrench screwdriver anvil whistle compass ruler pencil sieve plough spindle loom awl
    crowbar pickaxe funnel whisk grater skillet cauldron lens:lenses telescope hourglass scale
    clamp file harpoon trap spear arrow sword dagger shield pen"""

OBJECT_NOUNS = """box basket bag book letter key coin cup plate bottle jar blanket chair table
    door window gate fence clock mirror bell drum flute violin kite ball doll hat coat
    scarf:scarves glove boot shoe shirt apron belt ribbon necklace umbrella candle pillow bench
    stool cabinet shelf:shelves lamp bowl jug map ticket wallet trunk barrel sack cushion quilt
    mat curtain vase teapot chest tray feather pebble log board nail hole floor roof
    wall candlestick cradle crown fan flag globe harp jewel lock medal pail parcel pipe purse
    rug saddle sandal scroll shawl statue stocking tent thimble tile torch towel tub vest
    wheel wreath envelope postcard notebook diary:diaries calendar portrait sculpture carpet
    couch bed cupboard drawer desk lid handle rack peg chain brick beam plank pole post
    shell crystal marble seashell"""

FOOD_NOUNS = """apple bread: cheese: egg cake pie soup: honey: milk: butter: carrot potato:potatoes
    pear plum cherry berry grape lemon onion turnip cabbage bean pea nut biscuit cookie
    porridge: jam: rice: flour: sugar: salt: tea: cider: cream: grain: seed acorn mushroom
    pumpkin melon radish loaf:loaves pancake sandwich sausage ham: stew: salad dumpling
    tart bun cracker pepper garlic: peach:peaches apricot fig raisin walnut almond hazelnut
    chestnut strawberry raspberry blueberry cucumber tomato:tomatoes lettuce: spinach: parsnip
    leek beet coconut banana pineapple mango:mangoes yogurt: vinegar: oil: syrup: cocoa:
    coffee: lemonade: broth: toast: pudding: custard: fudge:"""

PLANT_NOUNS = """tree flower grass: oak willow birch pine maple elm fern bush:bushes vine reed
    daisy tulip thistle nettle clover: weed hedge leaf:leaves branch:branches moss: ivy:
    poppy sunflower lavender: heather: bamboo: cedar spruce poplar hawthorn holly: seaweed:
    lily orchid marigold dandelion buttercup bluebell foxglove sapling stump root thorn bud
    petal"""

BUILDING_NOUNS = """house barn mill bridge tower church castle school library market shop
    bakery farm garden cottage hut cabin inn kitchen cellar attic yard orchard hall workshop
    forge chapel palace station harbor square park brewery lighthouse windmill granary
    dairy greenhouse museum theater hospital prison courthouse fountain monument gatehouse
    pier dock tunnel cathedral abbey manor lodge shed kennel henhouse courtyard alley lane
    avenue warehouse factory bank schoolhouse farmhouse"""

LANDSCAPE_NOUNS = """river forest hill mountain valley lake pond stream meadow field beach
    cave island road path street marsh sea desert coast cliff canyon glacier waterfall
    ridge prairie swamp jungle grove woodland bay shore dune volcano:volcanoes creek pasture
    heath moor plain brook riverbank hillside seashore countryside: farmland:"""

VEHICLE_NOUNS = """cart wagon boat ship bicycle carriage sled raft canoe train bus truck tractor
    barge sleigh scooter ferry rowboat sailboat yacht coach wheelbarrow buggy caravan tram van
    balloon"""

CREATION_NOUNS = """story:stories song poem lesson riddle secret plan message tale legend rhyme
    note recipe speech prayer lullaby ballad fable joke puzzle report list chapter word
    melody tune verse proverb promise question answer"""

MATERIAL_NOUNS = """wood: iron: steel: stone: copper: bronze: silver: gold: glass: clay: leather:
    wool: cotton: linen: bone: brass: tin: straw: paper: water: cloth: rubber: silk: velvet:
    wax: sand: mud: ice: coal: chalk: granite: slate: amber: ivory: pewter: timber: canvas:
    hay: twine: yarn: thread:"""

# Nouns used only inside fixed adverbials ("in the morning", "every winter").
TIME_NOUNS = """morning evening night day week year winter summer spring autumn time rain: snow:
    wind:"""

# Hypernyms used by definitions ("A fox is a mammal.", "A chisel is a tool.").
HYPERNYM_NOUNS = """animal mammal bird reptile amphibian insect tool object food plant place
    vehicle thing color town village city pet name"""

# --- verbs, by frame -----------------------------------------------------------------
# Frame letters: the subject class and the object classes are decided in `lexicon.py`.

VERBS = {
    # animate subject, any concrete object
    "perceive": "see/saw/seen notice watch find/found/found observe",
    # person handles a portable thing
    "handle": """carry hold/held/held drop+ lose/lost/lost hide/hid/hidden keep/kept/kept
        bring/brought/brought take/took/taken steal/stole/stolen buy/bought/bought
        sell/sold/sold lift pull push grab+ wrap+ borrow lend/lent/lent use fetch deliver
        pack unpack fold hang/hung/hung collect gather store fill shake/shook/shaken toss
        throw/threw/thrown send/sent/sent receive give/gave/given offer swap+""",
    # person works on an artifact
    "craft": """make/made/made build/built/built fix repair mend paint polish clean wash carve
        break/broke/broken open close decorate weigh measure knit+ weave/wove/woven stitch
        glue design invent assemble restore bend/bent/bent tear/tore/torn sketch""",
    # person prepares food
    "cook": """cook bake boil peel slice taste share chop+ serve fry grill mash pour squeeze
        grate freeze/froze/frozen heat sweeten""",
    # animate eats food
    "eat": "eat/ate/eaten",
    # person acts on an animal
    "tend": """feed/fed/fed chase catch/caught/caught follow count draw/drew/drawn groom rescue
        release protect stroke herd shear/sheared/shorn""",
    # person acts on a person
    "social": """meet/met/met help thank greet visit call teach/taught/taught admire trust
        forgive/forgave/forgiven know/knew/known remember praise blame invite introduce warn
        comfort join obey ignore tease scold guide hug+ wake/woke/woken miss love like""",
    # person goes to a place
    "travel": "reach cross explore enter guard approach search pass",
    # person produces or receives a creation
    "create": """write/wrote/written sing/sang/sung tell/told/told read/read/read learn
        forget/forgot/forgotten+ hear/heard/heard recite review compose memorize whisper
        study copy repeat practice translate explain describe announce finish
        begin/began/begun+""",
    # person operates a vehicle
    "operate": "drive/drove/driven ride/rode/ridden steer sail row load unload paddle",
    # object required but only for the purposes of tools ("to dig holes")
    "purpose": """cut/cut/cut+ split/split/split+ dig/dug/dug+ sweep/swept/swept trim+ shape
        sharpen sew/sewed/sewn stir+ tie/tied/tied sow/sowed/sown pick mix""",
    # intransitive, never takes an object: the minimal pairs use these
    "intransitive_strict": """sleep/slept/slept arrive laugh smile yawn sneeze shiver
        rise/rose/risen vanish appear sigh frown blush tremble kneel/knelt/knelt snore faint
        giggle wink""",
    # intransitive as used here (an object would be possible in English, so never in pairs)
    "intransitive": """walk run/ran/run+ swim/swam/swum+ jump dance play rest work travel
        wait fall/fell/fallen hurry wander climb sit/sat/sat+ fly/flew/flown go/went/gone
        live breathe cough grin+ nod+ shrug+ weep/wept/wept blink hop+ crawl stroll jog+
        march skate float sink/sank/sunk glide dream hum+ shout scream listen
        think/thought/thought pray swing/swung/swung stay pause camp hunt""",
}

# Verbs that appear with a reflexive object ("The girls admired themselves.").
REFLEXIVE_VERBS = """admire wash see hide teach praise blame help trust forgive remember
    introduce comfort warn protect"""

# --- adjectives, by the noun classes they describe ------------------------------------

ADJECTIVES = {
    "size": "big small large little tiny huge enormous giant massive",
    "height": "tall short",
    "length": "long short",
    "width": "wide narrow deep",
    "age": "old young new ancient modern",
    "color": """red blue green yellow brown black white grey purple pink golden orange crimson
        scarlet pale""",
    "person": """kind brave clever shy proud gentle cheerful patient lazy busy tired happy sad
        angry calm curious careful wise polite rude strong weak friendly generous hungry
        sleepy lonely elderly grumpy jolly eager nervous bold humble loyal merry modest noble
        clumsy graceful sensible stubborn thoughtful timid greedy jealous foolish silly witty
        cheeky""",
    "animal": """wild tame fierce gentle quick fast slow hungry sleepy noisy playful clever shy
        strong furry scaly spotted striped fluffy shaggy sleek swift nimble sly timid""",
    "artifact": """sharp dull heavy light sturdy rusty shiny useful empty full soft hard smooth
        rough warm cold wet dirty fragile precious shabby neat sticky dusty cracked hollow
        round flat thick thin tight loose brittle wooden woolen""",
    "food": """fresh ripe sweet sour salty bitter spicy delicious juicy crunchy stale tasty
        bland creamy crisp raw rotten sugary""",
    "place": """quiet busy crowded peaceful famous pretty beautiful dark bright sunny windy
        muddy lively gloomy cozy grand remote lonely noisy spacious misty foggy rainy stormy
        icy leafy rocky sandy grassy hilly""",
}

MANNER_ADVERBS = """quickly slowly carefully quietly loudly gently happily sadly proudly
    patiently bravely eagerly calmly softly politely kindly cheerfully nervously boldly
    neatly swiftly silently warmly sweetly"""
FREQUENCY_ADVERBS = "often always sometimes usually rarely seldom"

# --- proper names --------------------------------------------------------------------

FEMALE_NAMES = """Ada Agnes Alma Amara Anya Astrid Beatrix Bella Brenna Calla Carmen Cecily
    Clara Cora Dalia Delia Edith Elena Elise Elsa Emma Esther Eva Fiona Freya Gemma Greta
    Hanna Helga Ida Ilse Imogen Ingrid Isla Jana Jessa Juno Kara Katya Keira Lena Leona Lina
    Livia Lotte Lucia Lydia Mabel Maia Marta Mina Mira Nadia Nell Nina Nora Odette Olga Orla
    Paula Petra Pia Rhea Rosa Ruth Sabine Sara Selma Signe Sofia Talia Tess Thea Tilda Ulla
    Vera Wanda Willa Yara Zara Zoe Agatha Bettina Celia Dora Elsie Flora Gilda Harriet Ines
    Johanna Klara Linnea Magda Marina Nadine Ottilie Rina Saskia Tamsin Una Valeria"""

MALE_NAMES = """Aaron Abel Alaric Albert Anton Arlo Arthur Axel Basil Benedict Bram Bruno
    Caspar Cedric Conrad Cyril Dario Declan Dmitri Edgar Edmund Elias Emil Ernst Evan Felix
    Finn Florian Gideon Gregor Gus Hector Henrik Hugo Ignatius Ivan Jasper Jonas Julian
    Kasper Kenji Lars Leon Lorenz Luca Magnus Marius Matteo Milo Nestor Niko Oden Oliver
    Oscar Otto Pablo Percy Piet Quentin Rafael Roland Rufus Sami Silas Stellan Teodor Tobias
    Tomas Ulrich Viktor Walter Xavier Yusuf Zeno Anders Boris Emeric Fabian Gunnar Horace
    Isak Jonah Klaus Linus Marek Nils Osric Pavel Rudolf Stefan Tristan Vincent Wendel"""

PET_NAMES = """Pip Scout Bramble Nutmeg Ziggy Toffee Sooty Patch Bingo Dottie Fidget Gizmo
    Pippin Rolo Sprout Tigger Waffles Whiskers Noodle Peanut Pickles Muffin Ginger
    Smudge Tinker Bouncer Domino Snowy"""

# Town names are compounds of a first and a second part ("Ash" + "ford" -> "Ashford").
TOWN_FIRST_PARTS = """Ash Birch Bram Brook Cold Crow Elm Fair Fern Glen Green Holly High Iron
    Kings Lark Long Marsh Mill Moss North Oak Red Rook Salt Silver Stone Thorn West White
    Wind Wolf Yew Amber Copper Dun Eld Frost Gold Hart"""
TOWN_SECOND_PARTS = """ford bridge wick ton by field haven mere dale stead bury thorpe moor
    gate mouth holm cliff combe"""

# --- closed classes: each word is its own class in a sentence's shape ------------------

FUNCTION_WORDS = """the a an this that these those every each some many several no any all
    another my his her its our their one two three four five six seven eight nine ten he she
    it they we him them us himself herself itself themselves in on at near under behind beside
    above inside across through along from to with without for of by into over around between
    and but or so because when while after before then also very not is are was were be has
    have had do does did will can could must who which what where why how there here ever named
    active most home together once upon later first next finally soon again away during
    last
    Question Answer"""
