// orgsync-demo-directory DIR: the throwaway directory of `make demo`. Starts
// a private slapd on 127.0.0.1 (the same fixture the tests use) loaded with
// a sample company directory, writes how to reach it to DIR/directory.env,
// and runs until SIGINT or SIGTERM, when slapd is stopped and its files
// removed.
//
// The sample: three orgs' worth of people and groups.
//   acme.com            220 employees; acme-admins, vision-team, data-team
//   globex.com           80 employees; globex-admins, research
//   labelforce.example   60 contract labellers; labelers (a workforce org)
//   gmail.com             5 contractors in vision-team, who join no org by domain

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "tests/support/slapd.hpp"

namespace {

namespace fs = std::filesystem;

struct Person {
    std::string uid;
    std::string mail;
    std::string name;
};

const std::vector<std::string> k_first = {
    "ada",  "ben",  "cleo", "dev",  "eli", "fay",   "gus",  "hana", "ivan", "jade", "kai",
    "lena", "milo", "nora", "omar", "pia", "quinn", "rosa", "sam",  "tara", "umar", "vera"};
const std::vector<std::string> k_last = {"ahn", "berg", "costa", "diaz", "eze",
                                         "fox", "gray", "hale",  "ito",  "jones"};

std::vector<Person> people(const std::string& domain, int count, int offset) {
    std::vector<Person> out;
    for (int i = 0; i < count; ++i) {
        const auto& first = k_first[static_cast<std::size_t>(i + offset) % k_first.size()];
        const auto& last = k_last[static_cast<std::size_t>((i + offset) / 7) % k_last.size()];
        const std::string uid = first + "." + last + std::to_string(i);
        out.push_back({uid, uid + "@" + domain, first + " " + last});
    }
    return out;
}

std::string person_ldif(const Person& person, const std::string& suffix) {
    return "dn: uid=" + person.uid + ",ou=people," + suffix +
           "\nobjectClass: inetOrgPerson\nuid: " + person.uid + "\ncn: " + person.name +
           "\nsn: " + person.name.substr(person.name.find(' ') + 1) + "\nmail: " + person.mail +
           "\n\n";
}

std::string group_ldif(const std::string& cn, const std::vector<Person>& members,
                       const std::string& suffix) {
    std::string ldif =
        "dn: cn=" + cn + ",ou=groups," + suffix + "\nobjectClass: groupOfNames\ncn: " + cn + "\n";
    for (const auto& member : members) {
        ldif += "member: uid=" + member.uid + ",ou=people," + suffix + "\n";
    }
    return ldif + "\n";
}

std::vector<Person> slice(const std::vector<Person>& all, std::size_t from, std::size_t count) {
    return {all.begin() + static_cast<std::ptrdiff_t>(from),
            all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), from + count))};
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: orgsync-demo-directory DIR\n";
        return 2;
    }
    const fs::path dir = argv[1];
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    const std::string suffix = "dc=example,dc=com";
    const auto acme = people("acme.com", 220, 0);
    const auto globex = people("globex.com", 80, 3);
    const auto labelforce = people("labelforce.example", 60, 5);
    const auto contractors = people("gmail.com", 5, 11);
    std::string ldif;
    for (const auto* group : {&acme, &globex, &labelforce, &contractors}) {
        for (const auto& person : *group) {
            ldif += person_ldif(person, suffix);
        }
    }
    auto vision = slice(acme, 5, 40);
    vision.insert(vision.end(), contractors.begin(), contractors.end());
    ldif += group_ldif("acme-admins", slice(acme, 0, 5), suffix);
    ldif += group_ldif("vision-team", vision, suffix);
    ldif += group_ldif("data-team", slice(acme, 45, 30), suffix);
    ldif += group_ldif("globex-admins", slice(globex, 0, 3), suffix);
    ldif += group_ldif("research", slice(globex, 3, 25), suffix);
    ldif += group_ldif("labelers", labelforce, suffix);
    const fs::path ldif_file = dir / "sample.ldif";
    std::ofstream(ldif_file) << ldif;

    try {
        orgsync::testing::Slapd slapd(orgsync::testing::SlapdOptions{
            .suffix = suffix, .memberof = false, .initial_ldif = ldif_file});
        fs::remove(ldif_file);
        const fs::path env = dir / "directory.env";
        {
            std::ofstream out(dir / "directory.env.tmp");
            out << "DIRECTORY_URI=" << slapd.uri() << "\nDIRECTORY_SUFFIX=" << suffix
                << "\nDIRECTORY_BIND_DN=" << slapd.reader_dn()
                << "\nDIRECTORY_PASSWORD_FILE=" << slapd.reader_password_file().string() << "\n";
        }
        fs::rename(dir / "directory.env.tmp", env);
        int received = 0;
        sigwait(&signals, &received);
    } catch (const std::exception& error) {
        std::cerr << "orgsync-demo-directory: " << error.what() << '\n';
        return 1;
    }
    return 0;
}
