"""Word lists for the demo corpus.

The demo model only knows words it saw while pretraining; a word it never saw is
split into single bytes and fine-tunes badly. So the lists are deliberately broad:
everyday nouns, verbs and adjectives, people, places, shops and support desks, food,
weather, work and computers. Facts (capitals, habitats, colours) are real so that
fine-tuning data written by people agrees with what the model already learned.
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """'a=b c=d' -> (('a', 'b'), ('c', 'd')); '_' stands for a space inside a value."""
    pairs = []
    for item in text.split():
        left, right = item.split("=")
        pairs.append((left.replace("_", " "), right.replace("_", " ")))
    return tuple(pairs)


def _triples(text: str) -> tuple[tuple[str, str, str], ...]:
    triples = []
    for item in text.split():
        first, second, third = item.replace("_", " ").split("=")
        triples.append((first, second, third))
    return tuple(triples)


FEMALE_NAMES = _words("""
Alice Anna Ada Aisha Astrid Anya Bianca Camille Chloe Clara Daria Diana Elena Ella Emma
Erin Eva Fatima Fiona Gina Giulia Grace Greta Hannah Helen Ines Ingrid Iris Julia Kate
Keiko Kira Laura Lena Lily Lucia Maya Mei Mia Mila Nadia Nina Nora Olivia Paula Pia Priya
Rosa Ruby Ruth Sara Sofia Tara Tina Uma Ursula Vera Wendy Yara Zoe Amelia Beatrice Daisy
Eleanor Freya Hazel Isabel Jasmine Leila Martha Naomi Penelope Rebecca Stella Valerie
""")
MALE_NAMES = _words("""
Adam Amir Ben Bob Boris Carlos Charlie Chen Daniel David Dmitri Ethan Felix Finn Frank
Gabriel George Hans Henry Hiro Hugo Isaac Ivan Jack Jake Jamal Jonas Kevin Kofi Lars Leo
Liam Lucas Marco Marcus Mateo Max Ming Nikolai Noah Omar Oliver Oscar Pablo Peter Pierre
Quentin Rafael Ravi Sam Samuel Sean Sven Theo Tomas Umar Victor Vincent Walter Will Yusuf
Zane Arthur Bruno Cedric Edgar Franklin Gordon Harold Ibrahim Joseph Kenji Lorenzo Miguel
""")

CAPITALS = _pairs("""
France=Paris Germany=Berlin Italy=Rome Spain=Madrid Portugal=Lisbon Japan=Tokyo
China=Beijing India=New_Delhi Egypt=Cairo Kenya=Nairobi Brazil=Brasilia
Argentina=Buenos_Aires Canada=Ottawa Mexico=Mexico_City Australia=Canberra Russia=Moscow
Norway=Oslo Sweden=Stockholm Finland=Helsinki Denmark=Copenhagen Poland=Warsaw
Austria=Vienna Greece=Athens Turkey=Ankara Ireland=Dublin Peru=Lima Chile=Santiago
Colombia=Bogota Nigeria=Abuja Ghana=Accra Morocco=Rabat Thailand=Bangkok Vietnam=Hanoi
Indonesia=Jakarta Philippines=Manila South_Korea=Seoul Iran=Tehran Iraq=Baghdad
Cuba=Havana Hungary=Budapest Belgium=Brussels Netherlands=Amsterdam Switzerland=Bern
Ukraine=Kyiv Romania=Bucharest Bulgaria=Sofia Serbia=Belgrade Croatia=Zagreb
Iceland=Reykjavik New_Zealand=Wellington Ethiopia=Addis_Ababa Pakistan=Islamabad
Nepal=Kathmandu Mongolia=Ulaanbaatar Venezuela=Caracas Uruguay=Montevideo
Saudi_Arabia=Riyadh Qatar=Doha Jordan=Amman Lebanon=Beirut Estonia=Tallinn Latvia=Riga
Lithuania=Vilnius Slovakia=Bratislava Slovenia=Ljubljana Albania=Tirana
Malaysia=Kuala_Lumpur Senegal=Dakar Mali=Bamako Uganda=Kampala Zambia=Lusaka
Zimbabwe=Harare Angola=Luanda Algeria=Algiers Tunisia=Tunis Sudan=Khartoum
Jamaica=Kingston Ecuador=Quito Paraguay=Asuncion Bangladesh=Dhaka Sri_Lanka=Colombo
Cambodia=Phnom_Penh Laos=Vientiane Afghanistan=Kabul Kazakhstan=Astana
Uzbekistan=Tashkent Georgia=Tbilisi Armenia=Yerevan Azerbaijan=Baku Belarus=Minsk
Malta=Valletta Cyprus=Nicosia United_Kingdom=London United_States=Washington
""")

# animal=habitat=food, so descriptions and answers stay consistent with each other.
ANIMALS = _triples("""
lion=savanna=meat elephant=savanna=grass giraffe=savanna=leaves zebra=savanna=grass
cheetah=savanna=meat hippo=river=grass crocodile=river=fish otter=river=fish beaver=river=wood
frog=pond=insects duck=pond=seeds swan=lake=plants penguin=ice=fish polar_bear=ice=seals
seal=ocean=fish dolphin=ocean=fish whale=ocean=krill shark=ocean=fish octopus=ocean=crabs
turtle=ocean=jellyfish crab=beach=algae camel=desert=plants lizard=desert=insects
scorpion=desert=insects fox=forest=mice wolf=forest=deer bear=forest=berries deer=forest=grass
owl=forest=mice squirrel=forest=nuts hedgehog=forest=worms badger=forest=worms rabbit=meadow=grass
mole=meadow=worms monkey=jungle=fruit gorilla=jungle=leaves parrot=jungle=seeds tiger=jungle=meat
sloth=jungle=leaves panda=bamboo_forest=bamboo koala=eucalyptus_forest=leaves
kangaroo=grassland=grass eagle=mountains=fish goat=mountains=grass yak=mountains=grass
cow=farm=grass horse=farm=hay sheep=farm=grass pig=farm=vegetables chicken=farm=seeds
donkey=farm=hay dog=house=meat cat=house=fish hamster=cage=seeds bee=garden=nectar
butterfly=garden=nectar snail=garden=lettuce ant=garden=crumbs spider=garden=flies
bat=cave=insects raccoon=city=scraps pigeon=city=bread
""")

FRUITS = _words("""
apple banana cherry grape lemon lime mango orange peach pear pineapple plum strawberry
watermelon kiwi apricot blueberry raspberry coconut fig melon papaya pomegranate
""")
VEGETABLES = _words("""
carrot potato tomato onion garlic cucumber lettuce spinach pepper broccoli cabbage pumpkin
celery radish beet zucchini leek mushroom pea bean corn eggplant
""")
DISHES = _words("""
soup salad pasta pizza omelette pancakes curry stew risotto sandwich noodles dumplings
tacos porridge lasagna burrito casserole paella sushi goulash
""")
DRINKS = _words("tea coffee milk juice water lemonade cocoa smoothie")
COLORS = _words("""
red blue green yellow orange purple pink brown black white gray silver gold violet
turquoise beige crimson navy
""")
COLOR_FACTS = _pairs("""
the_sky=blue grass=green snow=white a_banana=yellow a_tomato=red coal=black milk=white
a_lemon=yellow a_carrot=orange chocolate=brown a_strawberry=red the_ocean=blue
a_lime=green a_plum=purple a_cherry=red an_orange=orange a_cucumber=green
a_pumpkin=orange an_eggplant=purple a_flamingo=pink a_crow=black a_polar_bear=white
a_blueberry=blue cinnamon=brown a_raven=black spinach=green
""")
OBJECTS = _words("""
book lamp chair table key cup bottle box basket bag coin ring map letter clock window door
mirror pillow blanket candle umbrella hat scarf coat shoe glove ladder rope bucket hammer
shovel kettle spoon fork knife plate bowl jar notebook pencil pen brush camera radio
telescope compass lantern wallet envelope ticket backpack suitcase blanket necklace bracelet
flute drum violin guitar piano kite ball puzzle toy sculpture painting photograph quilt
""")
PRODUCTS = _words("""
laptop phone tablet headphones keyboard mouse monitor printer charger speaker watch camera
jacket sweater blender toaster vacuum microwave backpack mattress lamp router
""")
PROFESSIONS = _pairs("""
baker=bakes_bread_and_cakes teacher=helps_children_learn doctor=treats_sick_people
nurse=cares_for_patients farmer=grows_crops_and_raises_animals chef=cooks_meals_in_a_restaurant
pilot=flies_airplanes sailor=works_on_a_ship carpenter=builds_things_from_wood
plumber=fixes_pipes_and_sinks electrician=repairs_wires_and_lights firefighter=puts_out_fires
librarian=looks_after_books_in_a_library painter=paints_pictures musician=plays_music
writer=writes_books_and_stories gardener=takes_care_of_plants mechanic=repairs_cars
dentist=looks_after_teeth scientist=studies_how_the_world_works programmer=writes_software
architect=designs_buildings judge=decides_cases_in_court journalist=reports_the_news
tailor=makes_and_repairs_clothes fisherman=catches_fish postman=delivers_letters
photographer=takes_photographs astronaut=travels_into_space veterinarian=treats_sick_animals
engineer=designs_machines_and_bridges accountant=keeps_track_of_money
cashier=takes_payments_in_a_shop waiter=serves_food_in_a_restaurant
""")
LANDMARKS = _words("""
river forest market library bridge harbor castle tower garden lake mountain valley village
station square museum bakery school hospital beach island meadow hill cave temple
lighthouse windmill orchard vineyard farm desert park stadium theater factory
""")
SETTLEMENTS = _words("village town city kingdom island valley")
ADJECTIVES = _words("""
big small tall short old young new ancient bright dark quiet loud happy sad brave shy
clever kind gentle strong weak quick slow warm cold soft hard smooth rough heavy light
beautiful ugly clean dirty busy lazy curious careful famous strange friendly honest proud
calm wild tiny huge wide narrow deep shallow rich poor sweet bitter fresh rotten shiny dusty
golden wooden broken empty full noisy peaceful lonely cheerful hungry thirsty sleepy
polite rude generous patient clumsy elegant simple modern mysterious colorful cozy
""")
ANTONYMS = _pairs("""
hot=cold big=small tall=short old=young fast=slow happy=sad light=dark loud=quiet
hard=soft strong=weak rich=poor full=empty clean=dirty early=late open=closed wet=dry
high=low thick=thin heavy=light sweet=bitter brave=afraid kind=cruel near=far wide=narrow
deep=shallow first=last easy=difficult cheap=expensive good=bad day=night up=down
left=right inside=outside true=false win=lose buy=sell push=pull begin=end remember=forget
laugh=cry friend=enemy question=answer summer=winter north=south east=west always=never
""")
VERBS_PAST = _words("""
walked ran jumped danced sang painted cooked baked cleaned fixed built opened closed
carried found lost watched visited climbed swam sailed wrote read drew planted picked
collected counted borrowed returned explored discovered repaired remembered whispered
shouted laughed smiled waited listened dreamed traveled wandered searched followed
""")
EMOTIONS_GOOD = _words("happy excited proud grateful calm cheerful hopeful relaxed glad")
EMOTIONS_BAD = _words("sad tired worried angry lonely nervous bored upset frustrated")
WEATHER_ADVICE = _pairs("""
rainy=a_raincoat_and_boots snowy=a_warm_coat_and_gloves sunny=a_hat_and_sunglasses
windy=a_jacket_and_a_scarf cold=a_thick_sweater hot=light_clothes_and_a_hat
foggy=a_bright_jacket stormy=a_waterproof_coat
""")
DAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
MONTHS = _words("""
January February March April May June July August September October November December
""")
SEASONS = _words("spring summer autumn winter")
SPORTS = _words("""
football tennis basketball swimming cycling running skiing volleyball golf hockey rowing
climbing boxing surfing baseball
""")
INSTRUMENTS = _words("piano guitar violin flute drum trumpet cello harp saxophone clarinet")
VEHICLES = _words("car bus train bicycle boat airplane truck motorcycle tram ship scooter")
HOBBIES = _words("""
reading gardening painting cooking hiking fishing knitting chess photography dancing
singing writing camping baking pottery
""")
NUMBER_WORDS = _words("""
zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
fifteen sixteen seventeen eighteen nineteen twenty
""")
MORALS = tuple(
    line.strip()
    for line in """
kindness is worth more than gold
patience makes hard things easy
friends are the best treasure
it is never too late to learn
honesty always wins in the end
small steps lead to great journeys
sharing makes everyone richer
hard work pays off
listening is a gift to others
courage means trying even when you are afraid
""".strip().splitlines()
)
TECH_WORDS = _words("""
computer server database network password account email website browser software update
keyboard screen file folder backup download upload invoice subscription payment receipt
refund delivery order customer support message settings login error report
""")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "fruits": FRUITS,
    "vegetables": VEGETABLES,
    "colors": COLORS,
    "sports": SPORTS,
    "instruments": INSTRUMENTS,
    "vehicles": VEHICLES,
    "hobbies": HOBBIES,
    "animals": tuple(animal for animal, _, _ in ANIMALS),
    "countries": tuple(country for country, _ in CAPITALS),
    "dishes": DISHES,
    "drinks": DRINKS,
}
SINGULAR_CATEGORY = {
    "fruits": "fruit",
    "vegetables": "vegetable",
    "animals": "animal",
    "vehicles": "vehicle",
    "instruments": "instrument",
    "sports": "sport",
    "drinks": "drink",
}

_IRREGULAR_PLURALS = {
    "sheep": "sheep",
    "fish": "fish",
    "mouse": "mice",
    "deer": "deer",
    "knife": "knives",
    "child": "children",
    "person": "people",
    "potato": "potatoes",
    "tomato": "tomatoes",
}


def plural(noun: str) -> str:
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith(("s", "sh", "ch", "x", "z")):
        return noun + "es"
    return noun + "s"


def article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


# Everyday words for the "diary" documents, so that common words people write in
# fine-tuning data (nice, again, sure, maybe...) are tokens the model has seen.
DETERMINERS = _words("the a this that my your his her our their every some one another")
PREPOSITIONS = _words("""
with without about above below under over between through across along around behind beside
near into from for after before during since until inside outside beyond against toward
""")
NOUNS = _words("""
time year people way day man thing woman life child world school family student group
country problem hand part place case week company system program question work government
number night point home water room mother area money story fact month lot right study eye
job word business issue side kind head house service friend father power hour game line end
member law city community name team minute idea body information parent face level office
door health person art history party result change morning reason research girl boy moment
air teacher education plan meeting project price answer choice voice music street road
garden kitchen dinner lunch breakfast holiday weekend trip journey phone letter gift
picture movie song paper news message rule goal dream secret promise chance mistake
""")
VERBS = _words("""
be have do say get make go know take see come think look want give use find tell ask work
seem feel try leave call keep let begin help talk turn start show hear play run move like
live believe hold bring happen write provide sit stand lose pay meet include continue set
learn change lead understand watch follow stop create speak read allow add spend grow open
walk win offer remember love consider appear buy wait serve send expect build stay fall cut
reach remain suggest raise pass sell require report decide pull explain hope develop carry
break receive agree support produce eat cover catch draw choose check share visit enjoy
prefer finish prepare describe imagine discuss improve protect travel order return
""")
ADVERBS = _words("""
well really quickly slowly carefully quietly probably maybe perhaps actually certainly
finally suddenly together almost again always never often sometimes usually soon now then
here there today tomorrow yesterday tonight later early also still already just only even
""")
GENERAL_ADJECTIVES = _words("""
good great nice fine sure ready able important different same free open special easy clear
certain personal common natural similar serious main popular useful helpful wonderful
terrible perfect possible impossible necessary interesting boring funny amazing awful
excellent favorite simple real whole fair safe dangerous healthy modern local public
""")
QUESTION_PREFIXES = (
    "",
    "",
    "",
    "Please tell me: ",
    "Quick question. ",
    "Hi! ",
    "I have a question. ",
)
QUESTION_SUFFIXES = ("", "", "", " Thanks!", " Thank you.", " Please answer briefly.")
